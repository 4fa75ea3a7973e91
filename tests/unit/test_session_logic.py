"""Session flow with a fake cluster (the real one is exercised in tests/e2e)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hpc_dl4mic.errors import RemoteError
from hpc_dl4mic.jobs.slurm import JobInfo
from hpc_dl4mic.sessions import session as sess


class FakeScheduler:
    def __init__(self, states, end_time=""):
        self.states = list(states)
        self.end_time = end_time
        self.cancelled = False

    def info(self, job_id):
        state = "CANCELLED" if self.cancelled else (
            self.states.pop(0) if len(self.states) > 1 else self.states[0])
        return JobInfo(job_id=job_id, state=state, reason="Priority" if state == "PENDING"
                       else "", node="node7", end_time=self.end_time)

    def cancel(self, job_id):
        self.cancelled = True


class FakeForward:
    local_port = 43210

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


class FakeConn:
    def __init__(self, files=None):
        self.files = dict(files or {})

    def read_file(self, path):
        if path not in self.files:
            raise RemoteError(f"{path}: no such file")
        return self.files[path]

    def forward(self, host, port, *, local_port=0, via="paramiko"):
        self.forwarded = (host, port)
        return FakeForward()


@pytest.fixture
def session(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return sess.Session(id="S-1", profile="p", job_id="77", config="X", image="/i.sif",
                        session_dir="/w/sessions/S-1", results_dir="/w/results",
                        data_dir="/w/data", created=time.time())


def fast_clock(monkeypatch, step: int) -> None:
    """No real sleeping; every clock reading is ``step`` seconds after the last."""
    monkeypatch.setattr(sess.time, "sleep", lambda s: None)
    clock = iter(range(0, 10**6, step))
    monkeypatch.setattr(sess.time, "monotonic", lambda: next(clock))


def use(monkeypatch, scheduler):
    monkeypatch.setattr(sess, "scheduler", lambda conn: scheduler)


def test_wait_reports_each_state_once_and_returns_the_endpoint(session, monkeypatch):
    use(monkeypatch, FakeScheduler(["PENDING", "PENDING", "RUNNING"]))
    conn = FakeConn({"/w/sessions/S-1/connection.json":
                     b'{"host": "node7", "port": 4321, "token": "t0k"}'})
    lines = []
    fast_clock(monkeypatch, step=2)
    endpoint = sess.wait_until_ready(conn, session, timeout=100, say=lines.append)
    assert endpoint == sess.Endpoint("node7", 4321, "t0k")
    assert lines == ["job 77 queued: PENDING (Priority)",
                     "job 77 running on node7; Jupyter is ready"]


def test_wait_says_starting_jupyter_only_while_it_is_not_ready(session, monkeypatch):
    use(monkeypatch, FakeScheduler(["RUNNING"]))
    conn = FakeConn()
    lines = []
    fast_clock(monkeypatch, step=1)
    real_read = sess.read_endpoint
    calls = []

    def later(c, s):
        calls.append(1)
        if len(calls) > 3:
            c.files["/w/sessions/S-1/connection.json"] = b'{"host": "n", "port": 1, "token": "t"}'
        return real_read(c, s)

    monkeypatch.setattr(sess, "read_endpoint", later)
    assert sess.wait_until_ready(conn, session, timeout=100, say=lines.append).port == 1
    assert lines == ["job 77 running on node7; starting Jupyter ..."]


def test_connect_to_an_ended_session_says_it_ended_not_that_it_never_started(session,
                                                                              monkeypatch):
    use(monkeypatch, FakeScheduler(["CANCELLED"]))
    fast_clock(monkeypatch, step=2)
    with pytest.raises(RemoteError) as info:
        sess.wait_until_ready(FakeConn(), session, timeout=100, say=lambda _l: None,
                              reconnect=True)
    assert "has ended (job 77 CANCELLED)" in str(info.value)
    assert "before Jupyter was ready" not in str(info.value)


@pytest.mark.parametrize("cancel_on_exit", [True, False])
def test_a_failure_after_submission_cancels_only_with_cancel_on_exit(session, monkeypatch,
                                                                     cancel_on_exit):
    scheduler = FakeScheduler(["RUNNING"])
    use(monkeypatch, scheduler)
    session.state = "RUNNING"

    def broken_forward(*a, **kw):
        raise OverflowError("bind(): port must be 0-65535.")

    conn = FakeConn({"/w/sessions/S-1/connection.json":
                     b'{"host": "node7", "port": 4321, "token": "t0k"}'})
    monkeypatch.setattr(conn, "forward", broken_forward)
    monkeypatch.setattr(sess, "cancel", lambda c, s: scheduler.cancel(s.job_id))
    fast_clock(monkeypatch, step=2)
    lines = []
    with pytest.raises(OverflowError):
        sess.run_attached(conn, session, ready_timeout=100, local_port=0, say=lines.append,
                          on_ready=lambda u: None, cancel_on_exit=cancel_on_exit,
                          ask_cancel=None)
    assert scheduler.cancelled is cancel_on_exit
    assert ("cancelled job 77" if cancel_on_exit else "keeps running") in lines[-1]


@pytest.mark.parametrize("end,reason", [("COMPLETED", "job-ended"), ("TIMEOUT", "job-failed"),
                                        ("FAILED", "job-failed")])
def test_a_job_ending_while_attached_is_a_failure_unless_completed(session, monkeypatch, end,
                                                                   reason):
    use(monkeypatch, FakeScheduler(["RUNNING", end]))
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda _t: False)
    lines = []
    got = sess.attach(FakeConn(), session, sess.Endpoint("node7", 4321, "t0k"),
                      say=lines.append, on_ready=lambda u: None, stop=stop)
    assert got == reason
    assert f"ended ({end})" in lines[-1]


def test_job_ending_before_ready_is_an_error_with_the_log_tail(session, monkeypatch):
    use(monkeypatch, FakeScheduler(["RUNNING", "FAILED"]))
    conn = FakeConn({"/w/sessions/S-1/job.log": b"line1\nmodule: command not found\n"})
    fast_clock(monkeypatch, step=2)
    with pytest.raises(RemoteError, match="ended \\(FAILED\\) before Jupyter was ready") as info:
        sess.wait_until_ready(conn, session, timeout=100, say=lambda _l: None)
    assert "module: command not found" in str(info.value)


def test_timeout_keeps_the_job_and_says_how_to_see_its_log(session, monkeypatch):
    use(monkeypatch, FakeScheduler(["PENDING"]))
    fast_clock(monkeypatch, step=50)
    with pytest.raises(RemoteError, match="not ready after 100 s.*hpc-dl4mic logs S-1"):
        sess.wait_until_ready(FakeConn(), session, timeout=100, say=lambda _l: None)


def test_attach_warns_once_before_the_walltime_and_stops_when_the_job_ends(session,
                                                                            monkeypatch):
    soon = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 120))
    use(monkeypatch, FakeScheduler(["RUNNING", "RUNNING", "COMPLETED"], end_time=soon))
    lines, urls = [], []
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda _t: False)
    reason = sess.attach(FakeConn(), session, sess.Endpoint("node7", 4321, "t0k"),
                         say=lines.append, on_ready=urls.append, stop=stop)
    assert reason == "job-ended"
    assert urls == ["http://127.0.0.1:43210/lab?token=t0k"]
    assert sum("time limit" in line for line in lines) == 1
    assert sess.find_session("S-1").state == "COMPLETED"


@pytest.mark.parametrize("cancel_on_exit,answer,cancelled", [
    (True, False, True), (False, True, True), (False, False, False)])
def test_exit_policy_after_ctrl_c(session, monkeypatch, cancel_on_exit, answer, cancelled):
    scheduler = FakeScheduler(["RUNNING"])
    use(monkeypatch, scheduler)

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(sess, "wait_until_ready", interrupted)
    lines, asked = [], []

    def ask(question):
        asked.append(question)
        return answer

    reason = sess.run_attached(FakeConn(), session, ready_timeout=1, local_port=0,
                               say=lines.append, on_ready=lambda u: None,
                               cancel_on_exit=cancel_on_exit, ask_cancel=ask)
    assert reason == "interrupted"
    assert scheduler.cancelled is cancelled
    assert bool(asked) is (not cancel_on_exit)
    if not cancelled:
        assert "keeps running" in lines[-1] and "hpc-dl4mic connect S-1" in lines[-1]


def test_sessions_are_recorded_private_and_found_by_prefix_or_job_id(session):
    sess.save_session(session)
    path = sess.sessions_dir() / "S-1.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sess.sessions_dir().stat().st_mode & 0o777 == 0o700
    assert sess.find_session("S-").id == "S-1"
    assert sess.find_session("77").id == "S-1"
    with pytest.raises(Exception, match="no session"):
        sess.find_session("nope")


def test_job_script_quotes_paths_and_keeps_the_token_out_of_argv(session):
    from hpc_dl4mic.remote.profiles import Profile

    session.results_dir = "/w/my results; rm -rf ~"
    script = sess.render_job_script(session, Profile(name="p", host="h", modules=("apptainer",)),
                                    image_name="X", sbatch_lines=["--partition=gpu"])
    assert "RESULTS='/w/my results; rm -rf ~'" in script
    assert "module load apptainer" in script
    assert "--ServerApp.token" not in script and "JUPYTER_TOKEN=" in script
    assert "#SBATCH --partition=gpu" in script
    assert "od -An -N32 -tx1 /dev/urandom" in script


def test_transient_scheduler_errors_are_tolerated(session, monkeypatch):
    class Flaky(FakeScheduler):
        calls = 0

        def info(self, job_id):
            Flaky.calls += 1
            if Flaky.calls <= 2:
                raise RemoteError("scontrol: Socket timed out on send/recv operation")
            return super().info(job_id)

    use(monkeypatch, Flaky(["RUNNING"]))
    conn = FakeConn({"/w/sessions/S-1/connection.json":
                     b'{"host": "node7", "port": 4321, "token": "t0k"}'})
    fast_clock(monkeypatch, step=2)
    assert sess.wait_until_ready(conn, session, timeout=100, say=lambda _l: None).port == 4321


def test_persistent_scheduler_errors_are_reported(session, monkeypatch):
    class Broken(FakeScheduler):
        def info(self, job_id):
            raise RemoteError("scontrol: Unable to contact slurm controller")

    use(monkeypatch, Broken(["RUNNING"]))
    fast_clock(monkeypatch, step=2)
    with pytest.raises(RemoteError, match="Unable to contact"):
        sess.wait_until_ready(FakeConn(), session, timeout=100, say=lambda _l: None)


def test_log_is_read_from_an_offset(session):
    conn = FakeConn({"/w/sessions/S-1/job.log": b"one\ntwo\n"})
    assert sess.read_log(conn, session) == ("one\ntwo\n", 8)
    assert sess.read_log(conn, session, offset=4) == ("two\n", 8)
    assert sess.read_log(FakeConn(), session, offset=3) == ("", 3)


def test_job_script_sets_offline_unless_the_profile_says_nodes_have_internet(session):
    from dataclasses import replace

    from hpc_dl4mic.remote.profiles import Profile

    profile = Profile(name="p", host="h")
    script = sess.render_job_script(session, profile, image_name="X", sbatch_lines=[])
    assert "export APPTAINERENV_HPC_DL4MIC_OFFLINE=1" in script
    assert "ln -s /data /results/data" in script  # the data shows in Jupyter's file browser
    if "node_internet" in Profile.__dataclass_fields__:
        online = sess.render_job_script(session, replace(profile, node_internet=True),
                                        image_name="X", sbatch_lines=[])
        assert "HPC_DL4MIC_OFFLINE" not in online


def test_relative_paths_are_under_the_hosts_working_folder():
    assert sess._abs("x/y", "/home/u", "/work/here") == "/work/here/x/y"
    assert sess._abs("./x", "/home/u", "/home/u") == "/home/u/x"
    assert sess._abs("~/d", "/home/u", "/work/here") == "/home/u/d"
    assert sess._abs("/abs", "/home/u", "/work/here") == "/abs"


@pytest.mark.parametrize("value,dest", [("{src}", "my-images"), ("{src}:sets/a", "sets/a"),
                                        ("{src}/", "my-images")])
def test_upload_goes_into_its_own_folder_under_data(tmp_path, value, dest):
    src = tmp_path / "my-images"
    src.mkdir()
    local, got = sess.parse_upload(value.format(src=src))
    assert local == src or local == Path(str(src) + "/")
    assert got == dest
