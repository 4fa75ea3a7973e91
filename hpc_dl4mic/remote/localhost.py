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
    """Runs a job script detached from this command; the job id is ``local-<pid>``."""

    def __init__(self, host: LocalHost) -> None:
        self.host = host

    def submit(self, script: str) -> str:
        log = Path(script).parent / "job.log"
        with open(log, "ab") as out:
            os.chmod(log, 0o600)
            proc = subprocess.Popen(["bash", script], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=str(Path(script).parent))
        return f"{JOB_PREFIX}{proc.pid}"

    def submit_text(self, script: str, directory: str, make_dirs: Sequence[str] = ()) -> str:
        for path in (directory, *make_dirs):
            self.host.makedirs(path, mode=0o700)
        self.host.write_file(f"{directory}/job.sbatch", script, mode=0o700)
        return self.submit(f"{directory}/job.sbatch")

    def info(self, job_id: str):
        from ..jobs.slurm import JobInfo

        pid = _pid(job_id)
        state = "RUNNING" if _alive(pid) else "COMPLETED"
        return JobInfo(job_id=job_id, state=state, node=socket.gethostname())

    def cancel(self, job_id: str) -> None:
        pid = _pid(job_id)
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _pid(job_id: str) -> int:
    if not job_id.startswith(JOB_PREFIX) or not job_id[len(JOB_PREFIX):].isdigit():
        raise InputError(f"{job_id!r} is not a local job id")
    return int(job_id[len(JOB_PREFIX):])


def _alive(pid: int) -> bool:
    """Running and not a zombie (reaped lazily when its parent is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
