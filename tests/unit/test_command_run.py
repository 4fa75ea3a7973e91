"""`hpc-dl4mic run` (a plain command in the image as a job) and the job's extra forwarded
ports: the job script under bash with a fake apptainer, the follow loop on a FakeHost, the
refusals."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fakehost import FakeHost

from hpc_dl4mic.errors import InputError
from hpc_dl4mic.remote.profiles import Profile
from hpc_dl4mic.sessions import attach as att
from hpc_dl4mic.sessions.command import exit_code, follow, render_command_script
from hpc_dl4mic.sessions.options import check_ports
from hpc_dl4mic.sessions.records import Session, save_session

FAKE_APPTAINER = """#!/bin/sh
# fake `apptainer exec ... IMAGE CMD...`: print the argv, run the command after the image
printf '%s\\n' "$@" > "$FAKE_ARGV"
while [ "$1" != /i.sif ]; do shift; done
shift
exec "$@"
"""


def session(tmp_path: Path, **extra) -> Session:
    return Session(id="R-1", profile="p", job_id="7", config="X", image="/i.sif",
                   session_dir=str(tmp_path / "sess"), results_dir=str(tmp_path / "res"),
                   data_dir=str(tmp_path / "data"), created=time.time(), extra=dict(extra))


def test_the_command_script_quotes_every_word_and_keeps_the_exit_code(tmp_path):
    s = session(tmp_path)
    Path(s.session_dir).mkdir()
    hostile = "$(touch {pwned}); `touch {pwned}`".format(pwned=tmp_path / "pwned")
    script = tmp_path / "job.sh"
    script.write_text(render_command_script(
        s, Profile(name="p", host="h"), image_name="X", sbatch_lines=["--time=00:20:00"],
        command=["sh", "-c", 'echo "got: $1"; exit 3', "sh", hostile]))
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "#SBATCH --signal=B:USR1@120" in script.read_text()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "apptainer").write_text(FAKE_APPTAINER)
    (bindir / "apptainer").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}",
           "FAKE_ARGV": str(tmp_path / "argv")}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 3
    assert f"got: {hostile}" in proc.stdout  # arrived as one word, never run
    assert not (tmp_path / "pwned").exists()
    assert (Path(s.session_dir) / "exit_code").read_text().strip() == "3"
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[:2] == ["exec", "--nv"] and argv[argv.index("--pwd") + 1] == "/results"
    assert (tmp_path / "res" / "R-1").is_dir()  # the run's own results folder


def test_follow_prints_the_log_until_the_job_ends_and_reads_the_exit_code(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    host = FakeHost()
    s = session(tmp_path)
    host.add_file(f"{s.session_dir}/job.log", "hello\n")
    host.fake_scheduler.states = ["RUNNING", "COMPLETED"]
    host.add_file(f"{s.session_dir}/exit_code", "0\n")
    save_session(s)
    out: list[str] = []
    said: list[str] = []
    assert follow(host, s, write=out.append, say=said.append, interval=0) == 0
    assert "".join(out) == "hello\n" and said[-1].endswith("the command exited with code 0")
    host.add_file(f"{s.session_dir}/exit_code", "oops")
    assert exit_code(host, s) is None


def test_connect_refuses_a_command_run(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    save_session(session(tmp_path, kind="run"))
    with pytest.raises(InputError, match="is a command run"):
        att.reconnect("R-1")


def test_extra_ports_are_forwarded_with_jupyter_and_named(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    host = FakeHost()
    s = session(tmp_path, extra_ports=[6006, 8080])
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda _t: True)
    said: list[str] = []
    urls: list[str] = []
    att.attach(host, s, att.Endpoint("node1", 8888, "t"), say=said.append,
               on_ready=urls.append, stop=stop)
    assert [f.remote for f in host.forwards] == [("node1", 8888), ("node1", 6006),
                                                 ("node1", 8080)]
    assert said[:2] == ["port 6006 of the job: http://127.0.0.1:40006/",
                        "port 8080 of the job: http://127.0.0.1:40080/"]
    assert urls == ["http://127.0.0.1:40888/lab?token=t"]  # Jupyter's URL comes last


def test_a_bad_forward_port_is_refused():
    check_ports((1, 65535))
    with pytest.raises(InputError, match="--forward 70000: expected a port between"):
        check_ports((6006, 70000))
