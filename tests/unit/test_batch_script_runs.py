"""The rendered batch job script run by bash with a fake `apptainer` on PATH: every task of
a run without SLURM, one array element under SLURM, the walltime signal forwarded to the
task, a status file for a task whose container never started, the retry limit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hpc_dl4mic.batch.launch import render_array_script
from hpc_dl4mic.batch.runs import BatchRun
from hpc_dl4mic.remote.profiles import Profile

FAKE_APPTAINER = r"""#!/bin/bash
# fake `apptainer exec`: finds the task folder bound at /results and the task index
prev= dir= index=
for a in "$@"; do
  [ "$prev" = --bind ] && dir=$(printf '%s' "$a" | tr ',' '\n' | sed -n 's#:/results$##p')
  [ "$prev" = --index ] && index=$a
  prev=$a
done
printf '%s\n' "$@" > "$dir/argv"
echo "PYTHONPATH=${PYTHONPATH:-} NOUSERSITE=${APPTAINERENV_PYTHONNOUSERSITE:-}" > "$dir/env"
case "$FAKE_MODE" in
  ok) echo "{\"index\": $index, \"state\": \"completed\"}" > "$dir/status.json"; exit 0 ;;
  fail) echo "container did not start" >&2; exit 255 ;;
  wait) trap 'echo "{\"state\": \"timeout\"}" > "$dir/status.json"; exit 124' USR1
        touch "$dir/ready"
        while :; do sleep 0.05; done ;;
esac
"""


def script_for(tmp_path: Path, indices=(0, 1, 2), offset: int = 0, retries: int = 0) -> Path:
    run = BatchRun(id="R-1", profile="p", config="mini", image="/i.sif",
                   run_dir=str(tmp_path / "run dir"), data_dir=str(tmp_path / "data"),
                   notebook="/opt/nb.batch.ipynb", tasks=[], varying=[], created=0,
                   task_timeout=30, retries=retries)
    (tmp_path / "run dir" / "tasks").mkdir(parents=True)
    path = tmp_path / "job.sbatch"
    path.write_text(render_array_script(run, Profile(name="p", host="h"), image_name="mini",
                                        sbatch_lines=["--partition=cpu"], offset=offset,
                                        indices=indices, array="0-2", time_limit="00:10:00"))
    return path


def start(tmp_path: Path, script: Path, mode: str, **env: str) -> subprocess.Popen:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "apptainer").write_text(FAKE_APPTAINER)
    (bindir / "apptainer").chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.Popen(["bash", str(script)], env={
        **clean, "PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_MODE": mode, **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def status(tmp_path: Path, index: int) -> dict:
    return json.loads((tmp_path / "run dir" / "tasks" / str(index) / "status.json").read_text())


def test_the_script_is_valid_bash_with_the_array_and_the_signal(tmp_path):
    script = script_for(tmp_path)
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "#SBATCH --array=0-2\n" in text and "#SBATCH --signal=B:USR1@60\n" in text
    assert f"RUN_DIR='{tmp_path}/run dir'" in text  # quoted: a space in the path is safe


def test_without_slurm_every_task_runs_one_after_another(tmp_path):
    proc = start(tmp_path, script_for(tmp_path), "ok", PYTHONPATH="/host/site-packages")
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert [status(tmp_path, i)["state"] for i in range(3)] == ["completed"] * 3
    argv = (tmp_path / "run dir" / "tasks" / "1" / "argv").read_text().splitlines()
    assert argv[:2] == ["exec", "--nv"] and "--pwd" in argv and "/results" in argv
    assert argv[argv.index("--index") + 1] == "1" and argv[argv.index("--timeout") + 1] == "30"
    assert f"{tmp_path}/run dir:/hpc-dl4mic-run:ro" in argv[argv.index("--bind") + 1]
    # the host's Python settings stay out of the container
    env = (tmp_path / "run dir" / "tasks" / "1" / "env").read_text().strip()
    assert env == "PYTHONPATH= NOUSERSITE=1"


def test_an_array_element_runs_its_own_task_after_the_offset(tmp_path):
    proc = start(tmp_path, script_for(tmp_path, indices=(1000, 1001), offset=1000), "ok",
                 SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_JOB_ID="77")
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert status(tmp_path, 1001)["state"] == "completed"
    assert not (tmp_path / "run dir" / "tasks" / "1000").exists()


def test_a_container_that_never_starts_leaves_a_failed_status(tmp_path):
    proc = start(tmp_path, script_for(tmp_path, indices=(0,)), "fail")
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 1 and "container did not start" in out
    got = status(tmp_path, 0)
    assert got["state"] == "failed" and got["exit_code"] == 255
    assert got["error"]["name"] == "ContainerFailed"


def test_the_walltime_signal_reaches_the_task(tmp_path):
    proc = start(tmp_path, script_for(tmp_path, indices=(0,)), "wait",
                 SLURM_ARRAY_TASK_ID="0", SLURM_ARRAY_JOB_ID="77")
    ready = tmp_path / "run dir" / "tasks" / "0" / "ready"
    deadline = time.monotonic() + 20
    while not ready.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(proc.communicate()[0])
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 124, out
    assert status(tmp_path, 0)["state"] == "timeout"


def test_a_task_requeued_more_often_than_its_retries_is_failed(tmp_path):
    proc = start(tmp_path, script_for(tmp_path, indices=(0,), retries=1), "ok",
                 SLURM_ARRAY_TASK_ID="0", SLURM_RESTART_COUNT="2")
    proc.communicate(timeout=30)
    assert proc.returncode == 1
    got = status(tmp_path, 0)
    assert got["state"] == "failed" and got["error"]["name"] == "RetriesExhausted"
    assert "#SBATCH --requeue" in (tmp_path / "job.sbatch").read_text()
