"""`submit --local` job ids: a pid plus its start time, so a reused pid is never the job."""

from __future__ import annotations

import subprocess
import time

import pytest

from hpc_dl4mic.errors import InputError
from hpc_dl4mic.jobs.local import LocalScheduler, job_id_for, parse_job_id, start_time
from hpc_dl4mic.remote.localhost import LocalHost


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_job_id_carries_pid_and_start_time_from_proc_stat(sleeper):
    job_id = job_id_for(sleeper.pid)
    assert job_id == f"local-{sleeper.pid}-{start_time(sleeper.pid)}"
    assert parse_job_id(job_id) == (sleeper.pid, start_time(sleeper.pid))


def test_running_child_with_matching_start_time_is_running(sleeper):
    assert LocalScheduler(LocalHost()).info(job_id_for(sleeper.pid)).state == "RUNNING"


def test_process_with_another_start_time_is_not_the_job_and_never_signalled(sleeper):
    wrong = f"local-{sleeper.pid}-{int(start_time(sleeper.pid)) + 1}"
    scheduler = LocalScheduler(LocalHost())
    assert scheduler.info(wrong).state == "COMPLETED"
    scheduler.cancel(wrong)
    time.sleep(0.2)
    assert sleeper.poll() is None  # still alive: the unrelated process was left alone


def test_cancel_with_the_right_id_stops_the_job(sleeper):
    scheduler = LocalScheduler(LocalHost())
    job_id = job_id_for(sleeper.pid)
    scheduler.cancel(job_id)
    assert sleeper.wait(5) != 0
    assert scheduler.info(job_id).state == "COMPLETED"


def test_old_pid_only_id_of_an_unrelated_process_is_not_running(sleeper):
    scheduler = LocalScheduler(LocalHost())
    assert scheduler.info(f"local-{sleeper.pid}").state == "COMPLETED"
    scheduler.cancel(f"local-{sleeper.pid}")
    time.sleep(0.2)
    assert sleeper.poll() is None


def test_submitted_job_is_running_until_cancelled(tmp_path):
    scheduler = LocalScheduler(LocalHost())
    job_id = scheduler.submit_text("sleep 30\n", str(tmp_path / "s"))
    pid, start = parse_job_id(job_id)
    assert start is not None
    assert scheduler.info(job_id).state == "RUNNING"
    deadline = time.monotonic() + 10  # the child shows as `bash .../job.sbatch` once it execs
    while scheduler.info(f"local-{pid}").state != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scheduler.info(f"local-{pid}").state == "RUNNING"  # old ids still read
    scheduler.cancel(job_id)
    deadline = time.monotonic() + 5
    while scheduler.info(job_id).state == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert scheduler.info(job_id).state == "COMPLETED"


@pytest.mark.parametrize("job_id", ["local-", "local-12x", "local-1-2-3", "1234", "local--5"])
def test_malformed_local_job_id_is_an_input_error(job_id):
    with pytest.raises(InputError, match="not a local job id"):
        parse_job_id(job_id)


def test_missing_process_is_completed():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert LocalScheduler(LocalHost()).info(f"local-{proc.pid}-1").state == "COMPLETED"
