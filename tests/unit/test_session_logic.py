"""Waiting, attaching and the exit policy against a FakeHost (the real hosts are exercised
in tests/e2e)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fakehost import FakeHost

from hpc_dl4mic.errors import RemoteError
from hpc_dl4mic.remote.host import absolute
from hpc_dl4mic.sessions import attach as att
from hpc_dl4mic.sessions.launch import render_job_script
from hpc_dl4mic.sessions.options import parse_upload
from hpc_dl4mic.sessions.records import Session, find_session, save_session, sessions_dir

CONNECTION = b'{"host": "node7", "port": 4321, "token": "t0k"}'


@pytest.fixture
def session(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return Session(id="S-1", profile="p", job_id="77", config="X", image="/i.sif",
                   session_dir="/w/sessions/S-1", results_dir="/w/results", data_dir="/w/data",
                   created=time.time())


def host_with(states, files=None) -> FakeHost:
    host = FakeHost()
    host.fake_scheduler.states = list(states)
    host.fake_scheduler.node = "node7"
    for path, data in (files or {}).items():
        host.add_file(path, data)
    return host


def fast_clock(monkeypatch, step: int) -> None:
    """No real sleeping; every clock reading is ``step`` seconds after the last."""
    monkeypatch.setattr(att.time, "sleep", lambda s: None)
    clock = iter(range(0, 10**6, step))
    monkeypatch.setattr(att.time, "monotonic", lambda: next(clock))


def no_waiting(monkeypatch) -> threading.Event:
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda _t: False)
    return stop


def test_wait_reports_each_state_once_and_returns_the_endpoint(session, monkeypatch):
    host = host_with(["PENDING", "PENDING", "RUNNING"],
                     {"/w/sessions/S-1/connection.json": CONNECTION})
    lines = []
    fast_clock(monkeypatch, step=2)
    endpoint = att.wait_until_ready(host, session, timeout=100, say=lines.append)
    assert endpoint == att.Endpoint("node7", 4321, "t0k")
    assert lines == ["job 77 queued: PENDING (Priority)",
                     "job 77 running on node7; Jupyter is ready"]


def test_wait_says_starting_jupyter_only_while_it_is_not_ready(session, monkeypatch):
    host = host_with(["RUNNING"])
    lines = []
    fast_clock(monkeypatch, step=1)
    real_read = att.read_endpoint
    calls = []

    def later(h, s):
        calls.append(1)
        if len(calls) > 3:
            h.add_file("/w/sessions/S-1/connection.json", b'{"host": "n", "port": 1, '
                                                          b'"token": "t"}')
        return real_read(h, s)

    monkeypatch.setattr(att, "read_endpoint", later)
    assert att.wait_until_ready(host, session, timeout=100, say=lines.append).port == 1
    assert lines == ["job 77 running on node7; starting Jupyter ..."]


def test_connect_to_an_ended_session_says_it_ended_not_that_it_never_started(session,
                                                                              monkeypatch):
    fast_clock(monkeypatch, step=2)
    with pytest.raises(RemoteError) as info:
        att.wait_until_ready(host_with(["CANCELLED"]), session, timeout=100,
                             say=lambda _l: None, reconnect=True)
    assert "has ended (job 77 CANCELLED)" in str(info.value)
    assert "before Jupyter was ready" not in str(info.value)


@pytest.mark.parametrize("cancel_on_exit", [True, False])
def test_a_failure_after_submission_cancels_only_with_cancel_on_exit(session, monkeypatch,
                                                                     cancel_on_exit):
    host = host_with(["RUNNING"], {"/w/sessions/S-1/connection.json": CONNECTION})
    session.state = "RUNNING"

    def broken_forward(*a, **kw):
        raise OverflowError("bind(): port must be 0-65535.")

    monkeypatch.setattr(host, "forward", broken_forward)
    fast_clock(monkeypatch, step=2)
    lines = []
    with pytest.raises(OverflowError):
        att.run_attached(host, session, ready_timeout=100, local_port=0, say=lines.append,
                         on_ready=lambda u: None, cancel_on_exit=cancel_on_exit,
                         ask_cancel=None)
    assert host.fake_scheduler.cancelled == (["77"] if cancel_on_exit else [])
    assert ("cancelled job 77" if cancel_on_exit else "keeps running") in lines[-1]


@pytest.mark.parametrize("end,reason", [("COMPLETED", "job-ended"), ("TIMEOUT", "job-failed"),
                                        ("FAILED", "job-failed")])
def test_a_job_ending_while_attached_is_a_failure_unless_completed(session, monkeypatch, end,
                                                                   reason):
    lines = []
    got = att.attach(host_with(["RUNNING", end]), session, att.Endpoint("node7", 4321, "t0k"),
                     say=lines.append, on_ready=lambda u: None, stop=no_waiting(monkeypatch))
    assert got == reason
    assert f"ended ({end})" in lines[-1]


def test_job_ending_before_ready_is_an_error_with_the_log_tail(session, monkeypatch):
    host = host_with(["RUNNING", "FAILED"],
                     {"/w/sessions/S-1/job.log": b"line1\nmodule: command not found\n"})
    fast_clock(monkeypatch, step=2)
    with pytest.raises(RemoteError, match="ended \\(FAILED\\) before Jupyter was ready") as info:
        att.wait_until_ready(host, session, timeout=100, say=lambda _l: None)
    assert "module: command not found" in str(info.value)


def test_timeout_keeps_the_job_and_says_how_to_see_its_log(session, monkeypatch):
    host = host_with(["PENDING"])
    fast_clock(monkeypatch, step=50)
    with pytest.raises(RemoteError, match="not ready after 100 s.*hpc-dl4mic logs S-1"):
        att.wait_until_ready(host, session, timeout=100, say=lambda _l: None)
    assert host.fake_scheduler.cancelled == []


def test_attach_warns_once_before_the_walltime_and_stops_when_the_job_ends(session,
                                                                            monkeypatch):
    host = host_with(["RUNNING", "RUNNING", "COMPLETED"])
    host.fake_scheduler.end_time = time.strftime("%Y-%m-%dT%H:%M:%S",
                                                 time.localtime(time.time() + 120))
    lines, urls = [], []
    reason = att.attach(host, session, att.Endpoint("node7", 4321, "t0k"), say=lines.append,
                        on_ready=urls.append, stop=no_waiting(monkeypatch))
    assert reason == "job-ended"
    assert urls == [f"http://127.0.0.1:{host.forwards[0].local_port}/lab?token=t0k"]
    assert host.forwards[0].remote == ("node7", 4321)
    assert sum("time limit" in line for line in lines) == 1
    assert find_session("S-1").state == "COMPLETED"


@pytest.mark.parametrize("cancel_on_exit,answer,cancelled", [
    (True, False, True), (False, True, True), (False, False, False)])
def test_exit_policy_after_ctrl_c(session, monkeypatch, cancel_on_exit, answer, cancelled):
    host = host_with(["RUNNING"])

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(att, "wait_until_ready", interrupted)
    monkeypatch.setattr("hpc_dl4mic.sessions.results.time.sleep", lambda s: None)
    lines, asked = [], []

    def ask(question):
        asked.append(question)
        return answer

    reason = att.run_attached(host, session, ready_timeout=1, local_port=0, say=lines.append,
                              on_ready=lambda u: None, cancel_on_exit=cancel_on_exit,
                              ask_cancel=ask)
    assert reason == "interrupted"
    assert bool(host.fake_scheduler.cancelled) is cancelled
    assert bool(asked) is (not cancel_on_exit)
    if not cancelled:
        assert "keeps running" in lines[-1] and "hpc-dl4mic connect S-1" in lines[-1]


def test_the_openssh_tunnel_is_asked_for_only_when_chosen(session, monkeypatch):
    host = host_with(["RUNNING", "COMPLETED"])
    seen = []
    real = host.forward

    def forward(remote_host, remote_port, *, local_port=0, **kw):
        seen.append(kw)
        return real(remote_host, remote_port, local_port=local_port)

    monkeypatch.setattr(host, "forward", forward)
    for tunnel in ("paramiko", "openssh"):
        host.fake_scheduler.states = ["COMPLETED"]
        att.attach(host, session, att.Endpoint("node7", 4321, "t"), say=lambda _l: None,
                   on_ready=lambda u: None, stop=no_waiting(monkeypatch), tunnel=tunnel)
    assert seen == [{}, {"via": "openssh"}]


def test_sessions_are_recorded_private_and_found_by_prefix_or_job_id(session):
    save_session(session)
    path = sessions_dir() / "S-1.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sessions_dir().stat().st_mode & 0o777 == 0o700
    assert find_session("S-").id == "S-1"
    assert find_session("77").id == "S-1"
    with pytest.raises(Exception, match="no session"):
        find_session("nope")


def test_job_script_quotes_paths_and_keeps_the_token_out_of_argv(session):
    from hpc_dl4mic.remote.profiles import Profile

    session.results_dir = "/w/my results; rm -rf ~"
    script = render_job_script(session, Profile(name="p", host="h", modules=("apptainer",)),
                               image_name="X", sbatch_lines=["--partition=gpu"])
    assert "RESULTS='/w/my results; rm -rf ~'" in script
    assert "module load apptainer" in script
    assert "--ServerApp.token" not in script and "JUPYTER_TOKEN=" in script
    assert "#SBATCH --partition=gpu" in script
    assert "od -An -N32 -tx1 /dev/urandom" in script


def test_transient_scheduler_errors_are_tolerated(session, monkeypatch):
    host = host_with(["RUNNING"], {"/w/sessions/S-1/connection.json": CONNECTION})
    real, calls = host.fake_scheduler.info, []

    def flaky(job_id):
        calls.append(job_id)
        if len(calls) <= 2:
            raise RemoteError("scontrol: Socket timed out on send/recv operation")
        return real(job_id)

    monkeypatch.setattr(host.fake_scheduler, "info", flaky)
    fast_clock(monkeypatch, step=2)
    assert att.wait_until_ready(host, session, timeout=100, say=lambda _l: None).port == 4321


def test_persistent_scheduler_errors_are_reported(session, monkeypatch):
    host = host_with(["RUNNING"])

    def broken(job_id):
        raise RemoteError("scontrol: Unable to contact slurm controller")

    monkeypatch.setattr(host.fake_scheduler, "info", broken)
    fast_clock(monkeypatch, step=2)
    with pytest.raises(RemoteError, match="Unable to contact"):
        att.wait_until_ready(host, session, timeout=100, say=lambda _l: None)


def test_job_script_sets_offline_unless_the_profile_says_nodes_have_internet(session):
    from dataclasses import replace

    from hpc_dl4mic.remote.profiles import Profile

    profile = Profile(name="p", host="h")
    script = render_job_script(session, profile, image_name="X", sbatch_lines=[])
    assert "export APPTAINERENV_HPC_DL4MIC_OFFLINE=1" in script
    assert "ln -s /data /results/data" in script  # the data shows in Jupyter's file browser
    if "node_internet" in Profile.__dataclass_fields__:
        online = render_job_script(session, replace(profile, node_internet=True),
                                   image_name="X", sbatch_lines=[])
        assert "HPC_DL4MIC_OFFLINE" not in online


def test_relative_paths_are_under_the_hosts_working_folder():
    assert absolute("x/y", home="/home/u", cwd="/work/here") == "/work/here/x/y"
    assert absolute("./x", home="/home/u", cwd="/home/u") == "/home/u/x"
    assert absolute("~/d", home="/home/u", cwd="/work/here") == "/home/u/d"
    assert absolute("~", home="/home/u", cwd="/work/here") == "/home/u"
    assert absolute("/abs", home="/home/u", cwd="/work/here") == "/abs"


@pytest.mark.parametrize("value,dest", [("{src}", "my-images"), ("{src}:sets/a", "sets/a"),
                                        ("{src}/", "my-images")])
def test_upload_goes_into_its_own_folder_under_data(tmp_path, value, dest):
    src = tmp_path / "my-images"
    src.mkdir()
    local, got = parse_upload(value.format(src=src))
    assert local == src or local == Path(str(src) + "/")
    assert got == dest
