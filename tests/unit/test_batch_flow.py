"""A batch run on a FakeHost: planning and checks, the run folder, job arrays within
MaxArraySize, task states from SLURM and status files, rerun of failed tasks, cancel."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakehost import FakeHost

import hpc_dl4mic.images.build as image_build
import hpc_dl4mic.remote.hosts as hosts
import hpc_dl4mic.remote.profiles as profiles
import hpc_dl4mic.sessions.prepare as session_prepare
from hpc_dl4mic.batch import launch, results
from hpc_dl4mic.batch.runs import BatchRun, find_run
from hpc_dl4mic.batch.status import rows_for, task_state
from hpc_dl4mic.errors import InputError, NotebookError, ParameterError
from hpc_dl4mic.jobs.resources import JobResources
from hpc_dl4mic.jobs.scheduler import JobInfo
from hpc_dl4mic.remote.profiles import Profile

DATA = Path(__file__).resolve().parents[1] / "data"
NOTEBOOK = DATA / "mini_sweep.ipynb"
CONFIG = str(DATA / "mini_sweep" / "configuration.yaml")
PROFILE = Profile(name="p", host="h", work_dir="~/w", resources=JobResources(time="01:00:00"))


@dataclass
class Inputs:
    name: str = "mini_sweep"
    files: tuple = ()


@dataclass
class Image:
    path: str = "/home/u/w/images/x.sif"
    cached: bool = True


@pytest.fixture
def host(tmp_path, monkeypatch) -> FakeHost:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    fake = FakeHost()
    statuses: dict[int, dict] = {}
    fake.statuses = statuses  # type: ignore[attr-defined]

    def shell(argv, call):
        if "status.json" in argv[2] and "printf" in argv[2]:  # read_status_files
            return "".join(f"{i}\t{json.dumps(s)}\n" for i, s in sorted(statuses.items()))
        return None  # folder checks, status clearing: all fine

    fake.on("sh", "-c", do=shell)
    monkeypatch.setattr(hosts, "open_host", lambda *a, **kw: fake)
    monkeypatch.setattr(profiles, "get_profile", lambda *a, **kw: PROFILE)
    monkeypatch.setattr(image_build, "prepare_notebook_image", lambda *a, **kw: Inputs())
    monkeypatch.setattr(session_prepare, "session_image", lambda *a, **kw: Image())
    return fake


def sweep_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def start(tmp_path: Path, sweep: str | None = None, **options) -> BatchRun:
    opts = launch.BatchOptions(sweep_file=sweep_file(tmp_path, sweep) if sweep else None,
                               **options)
    return launch.start_batch(CONFIG, profile_name="p", run_local=False, profile_file=None,
                              build={"notebook": NOTEBOOK}, options=opts, say=lambda _: None)


GRID = ("grid:\n  number_of_epochs: [2, 13]\n  Weights_choice: [last, best]\n"
        "rows:\n  - {number_of_epochs: 3, flip_probability: 0.2}\n")


def test_a_sweep_becomes_one_array_with_a_manifest_and_the_runner(host, tmp_path):
    run = start(tmp_path, GRID, params=(("model_name", "m"),), max_parallel=2)
    assert [t["params"] for t in run.tasks][:2] == [
        {"model_name": "m", "number_of_epochs": 2, "Weights_choice": "last"},
        {"model_name": "m", "number_of_epochs": 2, "Weights_choice": "best"}]
    assert len(run.tasks) == 5 and run.varying == ["number_of_epochs", "Weights_choice",
                                                    "flip_probability"]
    assert run.run_dir.startswith("/home/u/w/results/batch/mini_sweep-")
    manifest = host.read_file(f"{run.run_dir}/params.jsonl").decode().splitlines()
    assert json.loads(manifest[4]) == {"index": 4, "params": {
        "model_name": "m", "number_of_epochs": 3, "flip_probability": 0.2}}
    runner = host.read_file(f"{run.run_dir}/batch_task.py").decode()
    assert runner == launch.runner_code() and "def run_task" in runner
    assert host.stat(run.run_dir).mode == 0o700
    (job_id, script), = host.fake_scheduler.submitted
    assert "#SBATCH --array=0-4%2" in script and "#SBATCH --time=01:00:00" in script
    assert "#SBATCH --signal=B:USR1@300" in script and "--requeue" not in script
    assert "NOTEBOOK=/opt/hpc-dl4mic/notebooks/mini_sweep.batch.ipynb" in script
    assert run.jobs[0].job_id == job_id and find_run(run.id).jobs[0].indices == [0, 1, 2, 3, 4]


def test_more_tasks_than_max_array_size_are_split_into_arrays_with_offsets(host, tmp_path):
    host.fake_scheduler.array_limit = 2
    run = start(tmp_path, GRID, retries=2)
    scripts = [s for _, s in host.fake_scheduler.submitted]
    assert [j.offset for j in run.jobs] == [0, 2, 4]
    assert ["#SBATCH --array=0-1" in scripts[0], "#SBATCH --array=0-1" in scripts[1],
            "#SBATCH --array=0\n" in scripts[2]] == [True] * 3
    assert "OFFSET=4" in scripts[2] and "#SBATCH --requeue" in scripts[0]
    assert run.jobs[2].element(4) == f"{run.jobs[2].job_id}_0"


def test_a_bad_value_is_refused_before_anything_is_sent(host, tmp_path):
    with pytest.raises(ParameterError, match=r"rows\[0\].*flip_probability.*between 0 and 1"):
        start(tmp_path, "rows:\n  - {flip_probability: 3}\n")
    with pytest.raises(InputError, match="model_name.*also given with -p"):
        start(tmp_path, "grid:\n  model_name: [a, b]\n", params=(("model_name", "x"),))
    assert host.calls == [] and host.fake_scheduler.submitted == []


def test_skipped_sections_convert_the_run_notebook_and_drop_their_fields(host, tmp_path):
    with pytest.raises(ParameterError, match="unknown parameter 'Data_folder'"):
        start(tmp_path, params=(("Data_folder", "/data/x"),), skip_sections="6.")
    with pytest.raises(NotebookError, match="no section 9."):
        start(tmp_path, skip_sections="9.")
    run = start(tmp_path, skip_sections="6.")
    text = host.read_file(f"{run.run_dir}/notebook.batch.ipynb").decode()
    assert "predictions.json" not in text and "training_evaluation.csv" in text
    assert run.notebook == "/hpc-dl4mic-run/notebook.batch.ipynb"
    assert "NOTEBOOK=/hpc-dl4mic-run/notebook.batch.ipynb" in host.fake_scheduler.submitted[0][1]


def test_local_refuses_what_it_would_ignore():
    with pytest.raises(InputError, match="--max-parallel, --retries: not used with --local"):
        launch.check_options(launch.BatchOptions(max_parallel=3, retries=1), run_local=True)
    with pytest.raises(InputError, match="--task-timeout 'soon'"):
        launch.check_options(launch.BatchOptions(task_timeout="soon"), run_local=False)
    assert launch.check_options(launch.BatchOptions(task_timeout="1:30:00"),
                                run_local=False) == 5400


@pytest.mark.parametrize("status, slurm, active, expected", [
    ({"state": "completed"}, "COMPLETED", None, "completed"),
    ({"state": "failed"}, "FAILED", None, "failed"),
    ({"state": "cancelled"}, "TIMEOUT", None, "timeout"),  # SLURM knows why
    ({"state": "cancelled"}, "CANCELLED", None, "cancelled"),
    ({"state": "timeout"}, None, None, "timeout"),
    ({"state": "running"}, "RUNNING", None, "running"),
    ({"state": "running"}, "NODE_FAIL", None, "node_fail"),
    ({"state": "running"}, "FAILED", None, "lost"),
    ({"state": "completed"}, "PENDING", None, "pending"),  # requeued: the old status is stale
    (None, "PENDING", None, "pending"),
    (None, "CANCELLED", None, "cancelled"),
    (None, None, True, "pending"),
    ({"state": "running"}, None, True, "running"),
    ({"state": "running"}, None, False, "lost"),
    (None, None, None, "unknown"),  # SLURM forgot it, no status: never "done"
    (None, None, False, "unknown"),
])
def test_task_state(status, slurm, active, expected):
    assert task_state(status, slurm, active) == expected


def test_rows_name_the_failing_cell_and_slurms_reason(host, tmp_path):
    run = start(tmp_path, GRID)
    job = run.jobs[0].job_id
    statuses = {0: {"state": "completed", "start": 100, "end": 160, "node": "n1"},
                1: {"state": "failed", "start": 100, "end": 110, "cell": 17,
                    "error": {"name": "ValueError", "message": "13 epochs",
                              "cell_title": "Start training"}}}
    elements = {f"{job}_2": JobInfo(f"{job}_2", "TIMEOUT", node="n2"),
                f"{job}_3": JobInfo(f"{job}_3", "RUNNING", node="n2")}
    rows = rows_for(run, statuses, elements, {job: None}, now=200)
    assert [r.state for r in rows] == ["completed", "failed", "timeout", "running", "unknown"]
    assert rows[0].duration == 60 and rows[0].error == "" and rows[0].node == "n1"
    assert rows[1].error == "ValueError: 13 epochs" and rows[1].cell == "cell 17: Start training"
    assert rows[2].error == "SLURM: TIMEOUT" and rows[2].job == f"{job}_2"


def test_rerun_failed_resubmits_only_those_tasks(host, tmp_path):
    run = start(tmp_path, GRID)
    job = run.jobs[0].job_id
    host.statuses.update({0: {"state": "completed"}, 1: {"state": "failed"},  # type: ignore
                          2: {"state": "completed"}, 3: {"state": "cancelled"},
                          4: {"state": "completed"}})
    host.fake_scheduler.elements = {f"{job}_{i}": JobInfo(f"{job}_{i}", s) for i, s in
                                    enumerate(["COMPLETED", "FAILED", "COMPLETED",
                                               "CANCELLED", "COMPLETED"])}
    said: list[str] = []
    _, chosen = results.rerun_run(run.id, failed=True, say=said.append)
    assert chosen == [1, 3]
    script = host.fake_scheduler.submitted[-1][1]
    assert "#SBATCH --array=1,3\n" in script and "OFFSET=0" in script
    again = find_run(run.id)
    assert [j.indices for j in again.jobs] == [[0, 1, 2, 3, 4], [1, 3]]
    assert again.job_of(3).job_id != job and again.job_of(2).job_id == job
    clear = [c for c in host.commands() if c[:2] == ["sh", "-c"] and "rm -f" in c[2]]
    assert clear and clear[-1][-2:] == ["1", "3"]
    with pytest.raises(InputError, match="--index 7: run"):
        results.rerun_run(run.id, indices=(7,), say=said.append)


def test_cancel_cancels_every_job_of_the_run(host, tmp_path):
    host.fake_scheduler.array_limit = 2
    run = start(tmp_path, GRID)
    results.cancel_run(run.id)
    assert host.fake_scheduler.cancelled == [j.job_id for j in run.jobs]
    assert find_run(run.id).state == "CANCELLED"
