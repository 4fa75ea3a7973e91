"""A session from submission to its results, on a FakeHost (LocalHost for the folder
checks, which run a shell script): start, ready, attach, cancel, logs, upload, fetch."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakehost import FakeHost

from hpc_dl4mic.errors import InputError, RemoteError
from hpc_dl4mic.remote.hosts import local_profile
from hpc_dl4mic.remote.localhost import LocalHost
from hpc_dl4mic.remote.profiles import Profile
from hpc_dl4mic.sessions import attach as att
from hpc_dl4mic.sessions import launch
from hpc_dl4mic.sessions.options import SubmitOptions, check_local_options
from hpc_dl4mic.sessions.records import Session, find_session
from hpc_dl4mic.sessions.results import cancel, fetch, print_log, read_log

PROFILE = Profile(name="p", host="h", work_dir="~/w")


@dataclass
class Inputs:
    name: str = "X"


@dataclass
class Image:
    path: str = "/home/u/w/images/x.sif"
    cached: bool = True


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(att.time, "sleep", lambda s: None)
    monkeypatch.setattr(launch, "session_image", lambda *a, **kw: Image())


def fake_host() -> FakeHost:
    host = FakeHost()
    host.on("sh", "-c", do=lambda argv, call: None)  # the folder check: all fine
    return host


def test_submit_wait_connection_file_attach_until_the_job_ends(monkeypatch, tmp_path):
    host = fake_host()
    jobs = host.fake_scheduler
    jobs.states = ["PENDING", "RUNNING", "RUNNING", "COMPLETED"]

    def jupyter_starts(job_id: str, script: str) -> None:
        session_dir = next(d for d in host.dirs if "/sessions/" in d)
        host.add_file(f"{session_dir}/connection.json",
                      '{"host": "node1", "port": 8888, "token": "secret"}')

    jobs.on_submit = jupyter_starts
    lines: list[str] = []
    session = launch.start_session(Inputs(), PROFILE, host, SubmitOptions(data="d"),
                                   say=lines.append)
    assert session.job_id == "100" and session.data_dir == "/home/u/d"
    assert session.session_dir.startswith("/home/u/w/sessions/X-")
    assert host.stat(f"{session.session_dir}/job.sbatch").mode == 0o700
    assert "secret" not in jobs.submitted[0][1]  # the token is made by the job, not here
    assert lines[-1] == f"submitted job 100 (session {session.id})"
    endpoint = att.wait_until_ready(host, session, timeout=60, say=lines.append, poll=0)
    assert endpoint == att.Endpoint("node1", 8888, "secret")
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda _t: False)
    urls: list[str] = []
    reason = att.attach(host, session, endpoint, say=lines.append, on_ready=urls.append,
                        stop=stop)
    assert reason == "job-ended" and "ended (COMPLETED); tunnel closed" in lines[-1]
    assert urls and urls[0].endswith("/lab?token=secret")
    assert find_session(session.id).state == "COMPLETED"


def test_folder_problems_name_their_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    with LocalHost() as host:
        with pytest.raises(InputError, match=f"^--data {tmp_path}/afile: not a folder$"):
            launch.prepare_folders(host, local_profile(), SubmitOptions(data="afile"))
        with pytest.raises(InputError, match="^--results .*afile/sub: cannot be created"):
            launch.prepare_folders(host, local_profile(),
                                   SubmitOptions(data="d", results="afile/sub"))
        with pytest.raises(InputError, match="^--data .*: a data/results path may not"):
            launch.prepare_folders(host, local_profile(), SubmitOptions(data="a:b"))
        folders = launch.prepare_folders(host, local_profile(), SubmitOptions(data="new"))
    assert folders.data == f"{tmp_path}/new" and (tmp_path / "new").stat().st_mode & 0o777 \
        == 0o700


def test_upload_copies_changed_files_only(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    (src / "a.tif").write_text("a")
    (src / "b.tif").write_text("b")
    host, lines = fake_host(), []
    assert launch.upload_data(host, src, "/home/u/data/imgs", say=lines.append) == 2
    assert lines[-1] == f"uploaded 2 changed file(s) from {src} to /home/u/data/imgs"
    (src / "b.tif").write_text("bb")
    assert launch.upload_data(host, src, "/home/u/data/imgs", say=lines.append) == 1
    assert host.read_file("/home/u/data/imgs/b.tif") == b"bb"


def test_local_upload_is_allowed_and_lands_in_data_name(tmp_path, monkeypatch):
    check_local_options(SubmitOptions(upload=str(tmp_path)), profile_name=None)
    with pytest.raises(InputError, match="--port"):
        check_local_options(SubmitOptions(local_port=8888), profile_name=None)
    src = tmp_path / "cells"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "c.txt").write_text("nuclei")
    host, lines = fake_host(), []
    launch.start_session(Inputs(), PROFILE, host, SubmitOptions(upload=str(src)),
                         say=lines.append)
    assert host.read_file("/home/u/w/data/cells/sub/c.txt") == b"nuclei"
    assert "your data is at /data/cells in the notebook" in lines


def session_on(host: FakeHost) -> Session:
    return Session(id="S-1", profile="p", job_id="77", config="X", image="/i.sif",
                   session_dir="/w/sessions/S-1", results_dir="/w/results", data_dir="/w/data",
                   created=time.time(), state="RUNNING")


def test_fetch_resumes_skips_links_and_keeps_mtimes(tmp_path, monkeypatch):
    host = fake_host()
    host.add_file("/w/results/S-1/a.ipynb", "A", mtime=1_700_000_000)
    host.add_file("/w/results/S-1/out/b.txt", "B")
    host.add_link("/w/results/S-1/data", "/data")
    real_get, calls = host.get, []

    def interrupted(remote, local, *, resume=False):
        calls.append(remote)
        if len(calls) == 2:
            raise RemoteError("connection lost")
        real_get(remote, local, resume=resume)

    monkeypatch.setattr(host, "get", interrupted)
    dest, lines = tmp_path / "got", []
    with pytest.raises(RemoteError):
        fetch(host, session_on(host), dest, say=lines.append)
    got = fetch(host, session_on(host), dest, say=lines.append)  # only what was missing
    assert got == [dest / "out" / "b.txt"] and lines[-1] == f"fetched {dest / 'out' / 'b.txt'}"
    assert not (dest / "data").exists()
    assert int(os.stat(dest / "a.ipynb").st_mtime) == 1_700_000_000
    assert fetch(host, session_on(host), dest, say=lines.append) == []
    with pytest.raises(RemoteError, match="no results folder on fake"):
        fetch(host, Session(**{**session_on(host).to_dict(), "id": "other"}), dest,
              say=lines.append)


@pytest.mark.parametrize("exit_code,state", [("", "CANCELLED"), ("0:0", "COMPLETED")])
def test_cancel_when_the_scheduler_cannot_say_why_a_job_ended(exit_code, state):
    host = fake_host()
    jobs = host.fake_scheduler
    jobs.cancel_state, jobs.exit_code = "COMPLETED", exit_code  # plain processes vs SLURM
    assert cancel(host, session_on(host)).state == state
    assert jobs.cancelled == ["77"]


def test_cancel_records_what_the_scheduler_says():
    host = fake_host()
    assert cancel(host, session_on(host)).state == "CANCELLED"
    assert find_session("S-1").state == "CANCELLED"


def test_logs_are_read_from_an_offset_and_followed_until_the_job_ends():
    host = fake_host()
    session = session_on(host)
    assert read_log(host, session, offset=3) == ("", 3)  # no log yet
    host.add_file("/w/sessions/S-1/job.log", "one\ntwo\n")
    assert read_log(host, session) == ("one\ntwo\n", 8)
    assert read_log(host, session, offset=4) == ("two\n", 8)
    host.fake_scheduler.states = ["RUNNING", "COMPLETED"]
    out: list[str] = []

    def write(text: str) -> None:
        out.append(text)
        if len(out) == 2:
            host.add_file("/w/sessions/S-1/job.log", "one\ntwo\nthree\n")

    print_log(host, session, follow=True, write=write, interval=0)
    assert "".join(out) == "one\ntwo\nthree\n"


def test_local_logs_and_fetch_go_through_this_machine(tmp_path):
    """``logs``/``fetch`` of a ``--local`` session: the same calls on LocalHost."""
    results, sdir = tmp_path / "results", tmp_path / "sessions" / "S-1"
    (results / "S-1").mkdir(parents=True)
    sdir.mkdir(parents=True)
    (results / "S-1" / "n.ipynb").write_text("{}")
    (results / "S-1" / "data").symlink_to(tmp_path)
    (sdir / "job.log").write_text("Jupyter is ready\n")
    session = Session(id="S-1", profile="local", job_id="local-1", config="X", image="/i",
                      session_dir=str(sdir), results_dir=str(results),
                      data_dir=str(tmp_path), created=time.time())
    with LocalHost() as host:
        assert read_log(host, session)[0] == "Jupyter is ready\n"
        got = fetch(host, session, tmp_path / "dest", say=lambda _l: None)
    assert got == [tmp_path / "dest" / "n.ipynb"] and not (tmp_path / "dest" / "data").exists()
    assert Path(got[0]).read_text() == "{}"
