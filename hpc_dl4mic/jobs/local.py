"""Jobs without a scheduler (``submit --local``): the job script runs detached in its own
session (it outlives the command, like a batch job) and is tracked by its process id and
start time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from .scheduler import JobInfo

if TYPE_CHECKING:
    from ..remote.host import Host

JOB_PREFIX = "local-"


class LocalScheduler:
    """Runs a job script detached from this command. The job id is
    ``local-<pid>-<starttime>``: a process id alone may name an unrelated process once the
    job has ended and the id is reused, so the start time (``/proc/PID/stat`` field 22) must
    match too. Ids of the older form ``local-<pid>`` are still read."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def submit(self, script: str) -> str:
        log = Path(script).parent / "job.log"
        with open(log, "ab") as out:
            os.chmod(log, 0o600)
            proc = subprocess.Popen(["bash", script], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=str(Path(script).parent))
        return job_id_for(proc.pid)  # our unreaped child: its pid cannot be reused yet

    def submit_text(self, script: str, directory: str, make_dirs: Sequence[str] = ()) -> str:
        for path in (directory, *make_dirs):
            self.host.makedirs(path, mode=0o700)
        self.host.write_file(f"{directory}/job.sbatch", script, mode=0o700)
        return self.submit(f"{directory}/job.sbatch")

    def info(self, job_id: str) -> JobInfo:
        state = "RUNNING" if is_job(*parse_job_id(job_id)) else "COMPLETED"
        return JobInfo(job_id=job_id, state=state, node=socket.gethostname())

    def cancel(self, job_id: str) -> None:
        pid, start = parse_job_id(job_id)
        if is_job(pid, start):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def max_array_size(self) -> int:
        return 1 << 30  # no arrays here: one job runs all of its tasks, one after another

    def array_states(self, job_ids: Sequence[str]) -> tuple[dict[str, JobInfo], bool]:
        return {}, False  # no elements: the job's own state and the tasks' status files tell


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` from field 3 (state) on, split after the last ``)`` (the command
    name in between may hold spaces and parentheses); None without such a process."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) >= 20 else None


def start_time(pid: int) -> str | None:
    """The process's start time (field 22 of ``/proc/PID/stat``, clock ticks after boot)."""
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def job_id_for(pid: int) -> str:
    """``local-<pid>-<starttime>`` (``local-<pid>`` where /proc is missing)."""
    start = start_time(pid)
    return f"{JOB_PREFIX}{pid}-{start}" if start else f"{JOB_PREFIX}{pid}"


def parse_job_id(job_id: str) -> tuple[int, str | None]:
    """(pid, start time or None for an old ``local-<pid>`` id)."""
    parts = job_id[len(JOB_PREFIX):].split("-") if job_id.startswith(JOB_PREFIX) else []
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise InputError(f"{job_id!r} is not a local job id "
                         "(expected local-<pid>-<starttime> or local-<pid>)")
    return int(parts[0]), parts[1] if len(parts) == 2 else None


def _looks_like_a_job(pid: int) -> bool:
    """For old ids without a start time: the process runs ``bash .../job.sbatch``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc to tell: as before
    return len(argv) >= 2 and Path(argv[0].decode(errors="replace")).name == "bash" \
        and argv[1].endswith(b"job.sbatch")


def is_job(pid: int, start: str | None) -> bool:
    """Whether the job is still running: the process exists, is not a zombie (reaped
    lazily when its parent is gone) and is the job's (same start time)."""
    fields = _stat_fields(pid)
    if fields is None:
        if Path("/proc/self/stat").exists():
            return False
        try:  # no /proc (not Linux): only the pid can be checked
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    if fields[0] == "Z":
        return False
    if start is None:
        return _looks_like_a_job(pid)
    return fields[19] == start
