"""`hpc-dl4mic batch` end to end: a real sshd, SLURM job arrays, apptainer and papermill on
127.0.0.1, with tests/data/mini_sweep.ipynb (fields over several sections, a name in two
sections, a training cell that deletes its model folder by name, one combination that fails
on purpose, a per-epoch training CSV)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from clitools import ca_args, cli, ended, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
CONFIG = DATA / "mini_sweep" / "configuration.yaml"
NOTEBOOK = DATA / "mini_sweep.ipynb"
SMALL_REQUIREMENTS = DATA / "requirements-small.txt"
SWEEP = """\
grid:
  number_of_epochs: [2, 13, 4]
  Weights_choice: [last, best]
rows:
  - {number_of_epochs: 3, flip_probability: 0.2, Use_the_current_trained_model: false}
"""


def image_args(base_sif: Path) -> list[str]:
    return ["--notebook", str(NOTEBOOK), "--requirements", str(SMALL_REQUIREMENTS),
            "--base", f"localimage:{base_sif}", *ca_args()]


def start(env, base_sif: Path, profile_file: Path, sweep: Path, *extra: str) -> str:
    out = cli(env, "batch", str(CONFIG), "--profile", "testcluster", "--profile-file",
              str(profile_file), *image_args(base_sif), "--sweep", str(sweep),
              "-p", "model_name", "sweep_model", *extra)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_a_sweep_runs_as_a_job_array_fails_one_task_and_reruns_only_it(
        cluster, base_sif, cluster_profile, state_env, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP)
    run_id = start(state_env, base_sif, cluster_profile, sweep, "--max-parallel", "4")
    tasks = wait_for(state_env, run_id, ended)
    states = {t["index"]: t["state"] for t in tasks}
    assert len(tasks) == 7
    failing = {t["index"] for t in tasks if t["params"].get("number_of_epochs") == 13}
    assert failing == {2, 3}
    assert all(states[i] == ("failed" if i in failing else "completed") for i in states), tasks
    for t in tasks:
        if t["index"] in failing:
            assert "ValueError: 13 epochs" in t["error"] and "Start training" in t["cell"]
        assert t["params"]["model_name"] == "sweep_model" and t["node"]
    table = cli(state_env, "batch", "status", run_id)
    assert "number_of_epochs" in table.stdout and "5 completed, 2 failed" in table.stderr

    dest = tmp_path / "fetched"
    fetched = cli(state_env, "batch", "fetch", run_id, "--dest", str(dest))
    assert fetched.returncode == 0, fetched.stderr
    for t in tasks:
        task_dir = dest / "tasks" / str(t["index"])
        assert (task_dir / "executed.ipynb").is_file()  # also for the failed ones
        if t["index"] in failing:
            continue
        summary = json.loads((task_dir / "sweep_model" / "training_summary.json").read_text())
        assert summary["number_of_epochs"] == t["params"]["number_of_epochs"]
        assert summary["Weights_choice"] == t["params"].get("Weights_choice", "best")
        assert summary["cwd"] == "/results"  # each task works in its own folder
        curve = task_dir / "sweep_model" / "Quality Control" / "training_evaluation.csv"
        assert len(curve.read_text().splitlines()) == summary["number_of_epochs"] + 1
    with open(dest / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["state"] for r in rows] == [states[i] for i in range(7)]
    assert rows[6]["param:flip_probability"] == "0.2"
    summary = json.loads((dest / "summary.json").read_text())
    assert any(k.startswith("metric:") and k.endswith(":val_loss") for k in summary[0])
    report = cli(state_env, "batch", "report", run_id, "--dest", str(dest))
    assert report.returncode == 0, report.stderr
    html = Path(report.stdout.strip()).read_text()
    assert "<svg" in html and "13 epochs" in html

    first_jobs = json.loads(cli(state_env, "batch", "list", "--json").stdout)[0]["jobs"]
    rerun = cli(state_env, "batch", "rerun", run_id, "--failed")
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.split() == ["2", "3"]
    tasks = wait_for(state_env, run_id, ended)
    record = json.loads(cli(state_env, "batch", "list", "--json").stdout)[0]
    assert record["jobs"][:1] == first_jobs and record["jobs"][1]["indices"] == [2, 3]
    by_index = {t["index"]: t for t in tasks}
    assert {i for i, t in by_index.items() if t["job"].startswith(record["jobs"][1]["job_id"])} \
        == {2, 3}
    assert [by_index[i]["state"] for i in range(7)] == [states[i] for i in range(7)]


def test_tasks_killed_by_slurm_are_reported_with_the_reason(cluster, base_sif, cluster_profile,
                                                            state_env, tmp_path):
    sweep = tmp_path / "sleepy.yaml"
    sweep.write_text("rows:\n  - {sleep_seconds: 0}\n  - {sleep_seconds: 600}\n"
                     "  - {sleep_seconds: 600}\n")
    run_id = start(state_env, base_sif, cluster_profile, sweep, "--time", "2")
    record = json.loads(cli(state_env, "batch", "list", "--json").stdout)[0]
    job = record["jobs"][0]["job_id"]
    tasks = wait_for(state_env, run_id,
                     lambda ts: ts[0]["state"] == "completed" and ts[1]["state"] == "running")
    cluster.ssh(["scancel", f"{job}_1"])
    tasks = wait_for(state_env, run_id, ended, timeout=240)
    assert [t["state"] for t in tasks] == ["completed", "cancelled", "timeout"], tasks
    dest = tmp_path / "fetched"
    assert cli(state_env, "batch", "fetch", run_id, "--dest", str(dest)).returncode == 0
    assert (dest / "tasks" / "0" / "sweep_model" / "training_summary.json").is_file()
    for index, state in ((1, "cancelled"), (2, "timeout")):
        # the executed notebook is saved, and says why, however early the task was stopped
        executed = json.loads((dest / "tasks" / str(index) / "executed.ipynb").read_text())
        assert f"task stopped ({state})" in executed["cells"][0]["source"]


def test_batch_runs_here_with_local(cluster, base_sif, state_env, tmp_path):
    sweep = tmp_path / "two.yaml"
    sweep.write_text("grid:\n  number_of_epochs: [2, 13]\n")
    out = cli(state_env, "batch", str(CONFIG), "--local", *image_args(base_sif), "--sweep",
              str(sweep))
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[-1]
    tasks = wait_for(state_env, run_id, ended, timeout=240)
    assert [t["state"] for t in tasks] == ["completed", "failed"]
    dest = tmp_path / "here"
    assert cli(state_env, "batch", "fetch", run_id, "--dest", str(dest)).returncode == 0
    assert (dest / "tasks" / "0" / "mini_model" / "training_summary.json").is_file()
