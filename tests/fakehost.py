"""FakeHost: the Host interface over an in-memory file system and scripted commands, for
fast unit tests. Never the only test of a feature: the e2e tier runs the real hosts."""

from __future__ import annotations

import hashlib
import os
import posixpath
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hpc_dl4mic.errors import CommandError, RemoteError
from hpc_dl4mic.jobs.scheduler import JobInfo
from hpc_dl4mic.remote import transfer
from hpc_dl4mic.remote.host import FileInfo, TreeReport, absolute
from hpc_dl4mic.remote.runner import Result, command_failed

Handler = Callable[[list[str], "Call"], "Result | tuple[int, str, str] | str | None"]


@dataclass
class Call:
    argv: list[str]
    input: str | None = None
    cwd: str | None = None
    env: dict[str, str] | None = None


@dataclass
class _File:
    data: bytes
    mode: int = 0o600
    mtime: float = field(default_factory=time.time)


class FakeScheduler:
    """Jobs whose state follows a script: ``states`` are returned one per ``info`` call
    (the last one repeats; an exception in it is raised instead, e.g. KeyboardInterrupt);
    ``cancel`` makes it CANCELLED."""

    def __init__(self, host: FakeHost,
                 states: Sequence[str | BaseException] = ("RUNNING",)) -> None:
        self.host = host
        self.states = list(states)
        self.submitted: list[tuple[str, str]] = []  # (job id, script text)
        self.cancelled: list[str] = []
        self.node = "node1"
        self.end_time = ""  # SLURM's EndTime of every job
        self.exit_code = ""  # "" like plain processes; SLURM says e.g. "0:0"
        self.cancel_state = "CANCELLED"  # what a cancelled job reports
        self.on_submit: Callable[[str, str], None] | None = None  # (job id, script)
        self.array_limit = 1001  # MaxArraySize
        self.elements: dict[str, JobInfo] = {}  # array element states, by JOBID_INDEX
        self.accounting = True

    def submit(self, script: str) -> str:
        return self._add(self.host.read_file(script).decode())

    def submit_text(self, script: str, directory: str, make_dirs: Sequence[str] = ()) -> str:
        for path in (directory, *make_dirs):
            self.host.makedirs(path)
        self.host.write_file(f"{directory}/job.sbatch", script, mode=0o700)
        return self._add(script)

    def _add(self, script: str) -> str:
        job_id = str(100 + len(self.submitted))
        self.submitted.append((job_id, script))
        if self.on_submit is not None:
            self.on_submit(job_id, script)
        return job_id

    def info(self, job_id: str) -> JobInfo | None:
        if job_id in self.cancelled:
            return JobInfo(job_id=job_id, state=self.cancel_state, node=self.node,
                           exit_code=self.exit_code)
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(state, BaseException):
            raise state
        if state == "GONE":
            return None
        return JobInfo(job_id=job_id, state=state, node=self.node,
                       reason="Priority" if state == "PENDING" else "", end_time=self.end_time,
                       exit_code=self.exit_code)

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)

    def max_array_size(self) -> int:
        return self.array_limit

    def array_states(self, job_ids: Sequence[str]) -> tuple[dict[str, JobInfo], bool]:
        return ({k: v for k, v in self.elements.items() if k.split("_")[0] in job_ids},
                self.accounting)


class _Forward:
    def __init__(self, host: FakeHost, remote_host: str, remote_port: int, local_port: int):
        self.remote = (remote_host, remote_port)
        self.local_port = local_port or 40000 + remote_port % 1000
        host.forwards.append(self)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.local_port}{path}"

    def __enter__(self) -> _Forward:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class FakeHost:
    """A Host with ``home``; files live in ``files``/``dirs``/``links``; commands go to the
    first handler whose prefix matches the argv, else to a built-in (``rm -rf`` and ``mv``
    over the in-memory files), else exit 127; all are recorded in ``calls``."""

    def __init__(self, home: str = "/home/u", *, display: str = "fake",
                 cwd: str | None = None) -> None:
        self.display = display
        self.local = False
        self._home = home
        self._cwd = cwd or home
        self.files: dict[str, _File] = {}
        self.dirs: dict[str, int] = {"/": 0o755}
        self.links: dict[str, str] = {}
        self.calls: list[Call] = []
        self.handlers: list[tuple[tuple[str, ...], Handler]] = []
        self.forwards: list[_Forward] = []
        self.fail_writes: set[str] = set()  # paths whose write/put raises (permission denied)
        self.locks: list[str] = []  # build-lock files taken (the holder's argument)
        self._scheduler = FakeScheduler(self)
        self.makedirs(home, 0o755)
        self.closed = False

    # -- set-up helpers for tests
    def on(self, *prefix: str, do: Handler) -> FakeHost:
        """Answer argvs starting with ``prefix`` with ``do(argv, call)``: a Result, a
        ``(rc, stdout, stderr)`` tuple, a stdout string, or None (rc 0, no output)."""
        self.handlers.append((prefix, do))
        return self

    def add_file(self, path: str, data: bytes | str, mode: int = 0o600,
                 mtime: float | None = None) -> None:
        path = self._abs(path)
        self.makedirs(posixpath.dirname(path), 0o755)
        self.files[path] = _File(data.encode() if isinstance(data, str) else data, mode,
                                 time.time() if mtime is None else mtime)

    def add_link(self, path: str, target: str) -> None:
        path = self._abs(path)
        self.makedirs(posixpath.dirname(path), 0o755)
        self.links[path] = target

    @property
    def fake_scheduler(self) -> FakeScheduler:
        return self._scheduler

    def commands(self) -> list[list[str]]:
        return [c.argv for c in self.calls]

    # -- Host
    def __enter__(self) -> FakeHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> Result:
        argv = [str(a) for a in argv]
        call = Call(argv, input, cwd, dict(env) if env else None)
        self.calls.append(call)
        for prefix, do in self.handlers:
            if tuple(argv[:len(prefix)]) == prefix:
                answer = do(argv, call)
                break
        else:
            builtin = self.BUILTINS.get(argv[0])
            answer = builtin(self, argv) if builtin is not None else (
                127, "", f"{argv[0]}: command not found")
        if isinstance(answer, Result):
            result = answer
        elif isinstance(answer, tuple):
            result = Result(argv, *answer)
        else:
            result = Result(argv, 0, answer or "", "")
        if check and result.returncode != 0:
            raise command_failed(result)
        return result

    def _operands(self, argv: list[str]) -> list[str]:
        args = argv[1:]
        if "--" in args:
            return [self._abs(a) for a in args[args.index("--") + 1:]]
        return [self._abs(a) for a in args if not a.startswith("-")]

    def _rm(self, argv: list[str]) -> tuple[int, str, str]:
        """``rm -rf PATH...``: a file, link or folder with everything below it."""
        for path in self._operands(argv):
            below = path.rstrip("/") + "/"
            for table in (self.files, self.links, self.dirs):
                for p in [p for p in table if p == path or p.startswith(below)]:
                    del table[p]
        return (0, "", "")

    def _mv(self, argv: list[str]) -> tuple[int, str, str]:
        """``mv [-f] SRC DST``: a file (or link) onto a file path or into a folder."""
        src, dst = self._operands(argv)
        if dst in self.dirs:
            dst = posixpath.join(dst, posixpath.basename(src))
        if posixpath.dirname(dst) not in self.dirs:
            return (1, "", f"mv: cannot move {src} to {dst}: No such file or directory")
        if src in self.files:
            self.files[dst] = self.files.pop(src)
        elif src in self.links:
            self.links[dst] = self.links.pop(src)
        else:
            return (1, "", f"mv: cannot stat {src}: No such file or directory")
        return (0, "", "")

    def _bash(self, argv: list[str]) -> tuple[int, str, str]:
        """The build lock's holder (``hpc_dl4mic.images.hostlock``): taken at once (a
        test that wants a wait answers ``bash`` itself); other scripts: not found."""
        if argv[3:4] == ["hpc-dl4mic-lock"]:
            self.locks.append(argv[4])
            return (0, "pid 4242\nlocked\n", "")
        return (127, "", "bash: command not found")

    BUILTINS: dict[str, Callable[[FakeHost, list[str]], tuple[int, str, str]]] = {
        "rm": _rm, "mv": _mv, "bash": _bash}

    def stream(self, argv: Sequence[str], *, on_line=None, check: bool = True,
               timeout: float | None = None, env: Mapping[str, str] | None = None,
               cwd: str | None = None) -> Result:
        result = self.run(argv, check=False, timeout=timeout, env=env, cwd=cwd)
        output = result.stdout + result.stderr
        if on_line is not None:
            for line in output.splitlines():
                on_line(line)
        merged = Result(result.argv, result.returncode, output, output)
        if check and merged.returncode != 0:
            raise command_failed(merged)
        return merged

    def home(self) -> str:
        return self._home

    def cwd(self) -> str:
        return self._cwd

    def _abs(self, path: str) -> str:
        return absolute(path, home=self._home, cwd=self._cwd)

    def stat(self, path: str) -> FileInfo | None:
        path = self._abs(path)
        if path in self.links:
            return FileInfo(path, "link", 0, 0.0, 0o777)
        if path in self.files:
            f = self.files[path]
            return FileInfo(path, "file", len(f.data), f.mtime, f.mode)
        if path in self.dirs:
            return FileInfo(path, "dir", 4096, 0.0, self.dirs[path])
        return None

    def listdir(self, path: str) -> list[FileInfo]:
        path = self._abs(path)
        if path not in self.dirs:
            raise RemoteError(f"{self.display}: cannot list {path}: no such folder")
        names = {p for p in (*self.files, *self.dirs, *self.links)
                 if p != path and posixpath.dirname(p) == path}
        return [self.stat(p) for p in sorted(names)]  # type: ignore[misc]

    def makedirs(self, path: str, mode: int = 0o700) -> None:
        path = self._abs(path)
        if path in self.files or path in self.links:
            raise RemoteError(f"{self.display}: cannot create directory {path}: exists and "
                              "is not a directory")
        parent = posixpath.dirname(path)
        if parent != path and parent not in self.dirs:
            self.makedirs(parent, mode)
        self.dirs.setdefault(path, mode)

    def chmod(self, path: str, mode: int) -> None:
        path = self._abs(path)
        if path in self.files:
            self.files[path].mode = mode
        elif path in self.dirs:
            self.dirs[path] = mode
        else:
            raise RemoteError(f"{self.display}: cannot chmod {path}: no such file")

    def remove(self, path: str) -> None:
        self.files.pop(self._abs(path), None)

    def read_file(self, path: str) -> bytes:
        path = self._abs(path)
        if path not in self.files:
            raise RemoteError(f"{self.display}: cannot read {path}: no such file")
        return self.files[path].data

    def write_file(self, path: str, data: bytes | str, mode: int = 0o600) -> None:
        path = self._abs(path)
        if path in self.fail_writes or posixpath.dirname(path) not in self.dirs:
            raise RemoteError(f"{self.display}: cannot write {path}: "
                              + ("permission denied" if path in self.fail_writes
                                 else "no such folder"))
        self.files[path] = _File(data.encode() if isinstance(data, str) else bytes(data), mode)

    def put(self, local: str | Path, remote: str, mode: int | None = None) -> None:
        local = Path(local)
        st = local.stat()
        self.write_file(remote, local.read_bytes(), st.st_mode & 0o777 if mode is None else mode)
        self.files[self._abs(remote)].mtime = st.st_mtime

    def get(self, remote: str, local: str | Path, *, resume: bool = False) -> None:
        f = self.files.get(self._abs(remote))
        if f is None:
            raise RemoteError(f"{self.display}: cannot download {remote}: no such file")
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.part")
        tmp.write_bytes(f.data)
        os.utime(tmp, (f.mtime, f.mtime))
        os.replace(tmp, local)

    def checksums(self, paths: Sequence[str]) -> dict[str, str]:
        return {p: hashlib.sha256(self.read_file(p)).hexdigest() for p in paths}

    def put_tree(self, local: Path, remote: str, *, say=None) -> TreeReport:
        return transfer.put_tree(self, local, self._abs(remote), say=say)

    def get_tree(self, remote: str, local: Path, *, say=None) -> TreeReport:
        return transfer.get_tree(self, self._abs(remote), local, say=say)

    def forward(self, remote_host: str, remote_port: int, *, local_port: int = 0) -> _Forward:
        return _Forward(self, remote_host, remote_port, local_port)

    def scheduler(self) -> FakeScheduler:
        return self._scheduler


def unused(*_args: object) -> None:
    raise CommandError("not expected in this test")
