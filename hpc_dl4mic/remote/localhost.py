"""This machine as a :class:`~hpc_dl4mic.remote.host.Host` (``submit --local``, local
builds): commands through :class:`LocalRunner`, files through the OS, forwards that need no
tunnel, and jobs as detached processes (:mod:`hpc_dl4mic.jobs.local`)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat as statmod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError, RemoteError
from ..fsutil import atomic_write, state_home
from .host import FileInfo, TreeReport, absolute
from .runner import LocalRunner, Result

if TYPE_CHECKING:
    from ..jobs.local import LocalScheduler

LOCAL_PROFILE = "local"


def local_work_dir() -> Path:
    return state_home() / "local"


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


def _kind(mode: int) -> str:
    if statmod.S_ISLNK(mode):
        return "link"
    if statmod.S_ISDIR(mode):
        return "dir"
    return "file" if statmod.S_ISREG(mode) else "other"


def _error(op: str, path: str, exc: OSError) -> RemoteError:
    return RemoteError(f"this machine: cannot {op} {path}: {exc.strerror or exc}")


class LocalHost:
    """This machine. Relative paths are relative to the current folder."""

    display = "this machine"
    local = True

    def __init__(self) -> None:
        self.runner = LocalRunner()

    def __enter__(self) -> LocalHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        return None

    # ---- commands

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> Result:
        return self.runner.run(argv, check=check, input=input, timeout=timeout, env=env,
                               cwd=self._abs(cwd) if cwd else None)

    def stream(self, argv: Sequence[str], *, on_line: Callable[[str], None] | None = None,
               check: bool = True, timeout: float | None = None,
               env: Mapping[str, str] | None = None, cwd: str | None = None) -> Result:
        return self.runner.stream(argv, on_line=on_line, check=check, timeout=timeout,
                                  env=env, cwd=self._abs(cwd) if cwd else None)

    # ---- files

    def home(self) -> str:
        return str(Path.home())

    def cwd(self) -> str:
        return os.getcwd()

    def _abs(self, path: str | Path) -> str:
        return absolute(str(path), home=self.home(), cwd=self.cwd())

    def stat(self, path: str) -> FileInfo | None:
        path = self._abs(path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _error("check", path, exc) from None
        return FileInfo(path, _kind(st.st_mode), st.st_size, st.st_mtime, st.st_mode & 0o777)

    def listdir(self, path: str) -> list[FileInfo]:
        path = self._abs(path)
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise _error("list", path, exc) from None
        infos = [self.stat(os.path.join(path, name)) for name in names]
        return [info for info in infos if info is not None]

    def makedirs(self, path: str, mode: int = 0o700) -> None:
        """``mkdir -p``; folders it creates get ``mode`` exactly (not umask-reduced)."""
        path = self._abs(path)
        missing: list[str] = []
        probe = path
        while not os.path.isdir(probe) and probe != os.path.dirname(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        try:
            for folder in reversed(missing):
                try:
                    os.mkdir(folder, mode)
                except FileExistsError:
                    if not os.path.isdir(folder):
                        raise
                    continue
                os.chmod(folder, mode)
        except OSError as exc:
            raise _error("create directory", path, exc) from None

    def chmod(self, path: str, mode: int) -> None:
        path = self._abs(path)
        try:
            os.chmod(path, mode)
        except OSError as exc:
            raise _error("chmod", path, exc) from None

    def remove(self, path: str) -> None:
        path = self._abs(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _error("remove", path, exc) from None

    def read_file(self, path: str) -> bytes:
        path = self._abs(path)
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise _error("read", path, exc) from None

    def write_file(self, path: str, data: bytes | str, mode: int = 0o600) -> None:
        path = self._abs(path)
        if not os.path.isdir(os.path.dirname(path)):  # as on any host: no folders made here
            raise _error("write", path, FileNotFoundError(2, "no such folder"))
        try:
            atomic_write(Path(path), data, mode=mode)
        except OSError as exc:
            raise _error("write", path, exc) from None

    # ---- transfers: both ends are this machine

    def put(self, local: str | Path, remote: str, mode: int | None = None) -> None:
        """Copy a file atomically; mode defaults to the source's, mtime is kept."""
        local, target = Path(local), Path(self._abs(remote))
        try:
            st = local.stat()
        except OSError as exc:
            raise InputError(f"cannot read {local}: {exc.strerror}") from None
        self._copy(local, target, st.st_mode & 0o777 if mode is None else mode)

    def get(self, remote: str, local: str | Path, *, resume: bool = False) -> None:
        """Copy a file atomically (a whole-file copy here: there is nothing to resume)."""
        source = Path(self._abs(remote))
        try:
            mode = source.stat().st_mode & 0o777
        except OSError as exc:
            raise _error("read", str(source), exc) from None
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        self._copy(source, Path(local), mode)

    def _copy(self, src: Path, dst: Path, mode: int) -> None:
        tmp = dst.with_name(f".{dst.name}.part-{os.getpid()}")
        try:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, mode)
            shutil.copystat(src, tmp, follow_symlinks=True)
            os.chmod(tmp, mode)
            os.replace(tmp, dst)
        except OSError as exc:
            raise _error("copy to", str(dst), exc) from None
        finally:
            tmp.unlink(missing_ok=True)

    def checksums(self, paths: Sequence[str]) -> dict[str, str]:
        sums: dict[str, str] = {}
        for path in paths:
            digest = hashlib.sha256()
            try:
                with open(self._abs(path), "rb") as handle:
                    while block := handle.read(4 << 20):
                        digest.update(block)
            except OSError as exc:
                raise _error("read", path, exc) from None
            sums[path] = digest.hexdigest()
        return sums

    def put_tree(self, local: Path, remote: str, *, say=None) -> TreeReport:
        from .transfer import put_tree

        return put_tree(self, local, self._abs(remote), say=say)

    def get_tree(self, remote: str, local: Path, *, say=None) -> TreeReport:
        from .transfer import get_tree

        return get_tree(self, self._abs(remote), local, say=say)

    # ---- ports and jobs

    def forward(self, remote_host: str, remote_port: int, *, local_port: int = 0,
                via: str = "paramiko") -> _DirectForward:
        if local_port and local_port != remote_port:
            raise InputError("--port does not apply to --local sessions (Jupyter listens on "
                             f"127.0.0.1:{remote_port} directly)")
        return _DirectForward(remote_port)

    def scheduler(self) -> LocalScheduler:
        from ..jobs.local import LocalScheduler

        return LocalScheduler(self)

    # ---- until every caller uses the Host methods above (issue 9)

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None
