"""The one interface for a machine hpc-dl4mic works on: this one, or a cluster over SSH.

Callers get a :class:`Host` (``sessions``, ``images``, ``batch``) and never ask which kind
it is. Implementations: :class:`hpc_dl4mic.remote.connection.SshHost` (paramiko; one
transport per command) and :class:`hpc_dl4mic.remote.localhost.LocalHost`; tests use
``tests/fakehost.py``. Paths are POSIX strings on the host; ``~`` and ``~/x`` mean the
host's home (:func:`expand_home`, the one ``~`` expansion), relative paths are relative to
:meth:`Host.cwd`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # only for annotations: no import cycle at run time
    from ..jobs.scheduler import Scheduler
    from .runner import Result

Say = Callable[[str], None]


@dataclass(frozen=True)
class FileInfo:
    """What ``stat`` says about one path (links are not followed)."""

    path: str
    kind: str  # "file" | "dir" | "link" | "other"
    size: int = 0
    mtime: float = 0.0
    mode: int = 0  # permission bits only (0o777)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))


@dataclass(frozen=True)
class TreeReport:
    """What a tree transfer did."""

    copied: tuple[str, ...]  # relative paths copied (changed or new)
    skipped: int  # files already identical (size and mtime)
    links: int  # symbolic links left out


class Forward(Protocol):
    """A local port that reaches ``remote_host:remote_port`` as seen from the host."""

    local_port: int

    def url(self, path: str = "/") -> str: ...
    def __enter__(self) -> Forward: ...
    def __exit__(self, *exc: object) -> None: ...


class Host(Protocol):
    """A machine to run commands on, hold files and jobs, and reach ports of."""

    display: str  # for messages: ``user@login.example.org`` or ``this machine``
    # True when the host's paths are this process's own (this machine): messages leave out
    # "on HOST" and local path rules (symlinks resolved, $HPC_DL4MIC_CACHE) apply
    local: bool

    def __enter__(self) -> Host: ...
    def __exit__(self, *exc: object) -> None: ...
    def close(self) -> None: ...

    # commands (argv lists; never a shell string)
    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> Result: ...
    def stream(self, argv: Sequence[str], *, on_line: Say | None = None, check: bool = True,
               timeout: float | None = None, env: Mapping[str, str] | None = None,
               cwd: str | None = None) -> Result: ...

    # files
    def home(self) -> str: ...
    def cwd(self) -> str: ...
    def stat(self, path: str) -> FileInfo | None: ...  # None: no such path
    def listdir(self, path: str) -> list[FileInfo]: ...
    def makedirs(self, path: str, mode: int = 0o700) -> None: ...
    def chmod(self, path: str, mode: int) -> None: ...
    def remove(self, path: str) -> None: ...  # a file; missing is fine
    def read_file(self, path: str) -> bytes: ...
    def write_file(self, path: str, data: bytes | str, mode: int = 0o600) -> None: ...

    # transfers (this machine <-> the host); atomic per file, mtime kept
    def put(self, local: str | Path, remote: str, mode: int | None = None) -> None: ...
    def get(self, remote: str, local: str | Path, *, resume: bool = False) -> None: ...
    # ``resume``: a ``<local>.part`` left by an interrupted get is continued, not restarted
    def checksums(self, paths: Sequence[str]) -> dict[str, str]: ...  # path -> sha256 hex
    def put_tree(self, local: Path, remote: str, *, say: Say | None = None) -> TreeReport: ...
    def get_tree(self, remote: str, local: Path, *, say: Say | None = None) -> TreeReport: ...

    # ports and jobs
    def forward(self, remote_host: str, remote_port: int, *,
                local_port: int = 0) -> Forward: ...
    def scheduler(self) -> Scheduler: ...


def expand_home(path: str, home: str) -> str:
    """``~`` and ``~/x`` on a host whose home is ``home``; other paths unchanged."""
    path = str(path)
    if path == "~":
        return home
    if path.startswith("~/"):
        return posixpath.join(home, path[2:])
    return path


def absolute(path: str, *, home: str, cwd: str) -> str:
    """``path`` on the host as an absolute, normalised path (``~`` = home, relative = cwd)."""
    path = expand_home(path, home)
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(cwd, path))


