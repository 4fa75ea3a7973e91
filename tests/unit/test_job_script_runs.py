"""The rendered job script run by bash with a fake `apptainer` on PATH: it finds Jupyter's
port, writes the connection file, and never hangs when Jupyter exits or `kill -0` lies."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from hpc_dl4mic.remote.profiles import Profile
from hpc_dl4mic.sessions.launch import render_job_script
from hpc_dl4mic.sessions.records import Session

FAKE_APPTAINER = """#!/bin/sh
# fake apptainer: FAKE_MODE=serve writes a Jupyter runtime file and serves; exit quits at once
case "$FAKE_MODE" in
  exit) echo "fake jupyter failed" >&2; exit 3 ;;
  serve) sleep 0.3
         printf '{\\n  "port": 45678,\\n  "token": "x"\\n}\\n' \\
             > "$JUPYTER_RUNTIME_DIR/jpserver-1.json"
         exec sleep 30 ;;
esac
"""


def run_job(tmp_path: Path, mode: str, bash_env: str = "") -> tuple[subprocess.Popen, Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "apptainer").write_text(FAKE_APPTAINER)
    (bindir / "apptainer").chmod(0o755)
    session = Session(id="S-1", profile="p", job_id="", config="X", image="/i.sif",
                      session_dir=str(tmp_path / "sess"), results_dir=str(tmp_path / "res"),
                      data_dir=str(tmp_path / "data"), created=time.time(), notebook="N.ipynb")
    Path(session.session_dir).mkdir()
    script = tmp_path / "job.sh"
    script.write_text(render_job_script(session, Profile(name="p", host="h"), image_name="X",
                                        sbatch_lines=[], ready_timeout=20,
                                        bind_host="127.0.0.1"))
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_MODE": mode}
    if bash_env:
        (tmp_path / "bash_env").write_text(bash_env)
        env["BASH_ENV"] = str(tmp_path / "bash_env")
    proc = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return proc, Path(session.session_dir) / "connection.json"


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {path.name}; job output:\n{proc.communicate()[0]}")
        time.sleep(0.05)


def test_job_script_writes_the_connection_file_once_jupyter_reports_its_port(tmp_path):
    proc, connection = run_job(tmp_path, "serve")
    try:
        wait_for(connection, proc)
        data = json.loads(connection.read_text())
        assert data["port"] == 45678 and data["host"] == "127.0.0.1"
        assert len(data["token"]) == 64
        assert connection.stat().st_mode & 0o777 == 0o600
    finally:
        proc.terminate()
        proc.wait(10)


def test_job_script_ends_with_an_error_when_jupyter_exits_before_it_is_ready(tmp_path):
    proc, connection = run_job(tmp_path, "exit")
    out = proc.communicate(timeout=15)[0]
    assert proc.returncode == 1
    assert "Jupyter exited before it was ready" in out and "fake jupyter failed" in out
    assert not connection.exists()


def test_job_script_is_not_fooled_by_kill_0_failing_for_a_running_container(tmp_path):
    # apptainer's starter was seen to answer kill -0 with EPERM while it set up its user
    # namespace; the script then took Jupyter for dead and hung in `wait` until the walltime
    eperm = ('kill() { if [ "$1" = -0 ]; then echo "kill: Operation not permitted" >&2; '
             'return 1; fi; builtin kill "$@"; }\n')
    proc, connection = run_job(tmp_path, "serve", bash_env=eperm)
    try:
        wait_for(connection, proc)
        assert json.loads(connection.read_text())["port"] == 45678
    finally:
        proc.terminate()
        proc.wait(10)
