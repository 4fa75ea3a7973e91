"""``submit --local``: the same job script, run on this machine with the local apptainer.

:class:`LocalHost` offers the slice of :class:`hpc_dl4mic.ssh.Connection` that sessions use
(run, files, forward) plus a scheduler without SLURM: the job script runs detached in its
own session (it outlives the command, like a batch job) and is tracked by its process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import InputError, RemoteError
from ..fsutil import atomic_write, state_home
from .runner import LocalRunner, Result

LOCAL_PROFILE = "local"
JOB_PREFIX = "local-"


def local_work_dir() -> Path:
    return state_home() / "local"


def local_profile():
    """The pseudo-profile of ``--local`` sessions (work dir in the XDG state dir)."""
    from .profiles import Profile

    return Profile(name=LOCAL_PROFILE, host="localhost", work_dir=str(local_work_dir()),
                   build="login")


class _DirectForward:
    """Jupyter already listens on 127.0.0.1 here: nothing to tunnel."""

    def __init__(self, port: int) -> None:
        self.local_port = port

    def __enter__(self) -> _DirectForward:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.local_port}{path}"


class LocalHost:
    """This machine, with the file and command API of an SSH connection."""

    def __init__(self) -> None:
        self.runner = LocalRunner()
        self.target = type("Target", (), {"display": "localhost"})()

    def __enter__(self) -> LocalHost:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> Result:
        return self.runner.run(argv, check=check, input=input, timeout=timeout, env=env, cwd=cwd)

    def home(self) -> str:
        return str(Path.home())

    def exists(self, path: str) -> bool:
        return Path(path).exists()

    def makedirs(self, path: str, mode: int = 0o700) -> None:
        Path(path).mkdir(parents=True, exist_ok=True, mode=mode)

    def write_file(self, path: str, data: bytes | str, mode: int = 0o600) -> None:
        atomic_write(Path(path), data, mode=mode)

    def read_file(self, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise RemoteError(f"{path}: {exc.strerror}") from None

    def forward(self, host: str, port: int, *, local_port: int = 0,
                via: str = "paramiko") -> _DirectForward:
        if local_port and local_port != port:
            raise InputError("--port does not apply to --local sessions (Jupyter listens on "
                             f"127.0.0.1:{port} directly)")
        return _DirectForward(port)

    def sftp(self):
        raise InputError("this is a --local session: its files are already on this machine")


class LocalScheduler:
    """Runs a job script detached from this command. The job id is
    ``local-<pid>-<starttime>``: a process id alone may name an unrelated process once the
    job has ended and the id is reused, so the start time (``/proc/PID/stat`` field 22) must
    match too. Ids of the older form ``local-<pid>`` are still read."""

    def __init__(self, host: LocalHost) -> None:
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

    def info(self, job_id: str):
        from ..jobs.slurm import JobInfo

        state = "RUNNING" if is_job(*parse_job_id(job_id)) else "COMPLETED"
        return JobInfo(job_id=job_id, state=state, node=socket.gethostname())

    def cancel(self, job_id: str) -> None:
        pid, start = parse_job_id(job_id)
        if is_job(pid, start):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


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
