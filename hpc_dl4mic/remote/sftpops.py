"""Pieces of :class:`~hpc_dl4mic.remote.connection.SshHost`'s file methods that need no
server: one-line SFTP errors naming the path, FileInfo from SFTP attributes, reading
``sha256sum`` output, and where a resumed download continues."""

from __future__ import annotations

import re
import stat
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError, RemoteError
from .host import FileInfo
from .messages import _one_line

_DIGEST = re.compile(r"[0-9a-f]{64}\Z")
_ESCAPES = {"n": "\n", "r": "\r", "\\": "\\"}


class SftpErrors:
    """Turns SFTP/SSH failures into one-line RemoteErrors naming the path."""

    def __init__(self, display: str, is_active: Callable[[], bool], op: str, path: str) -> None:
        self.display, self.is_active, self.op, self.path = display, is_active, op, path

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, (RemoteError, InputError)):
            return False
        import paramiko

        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc) or type(exc).__name__
        elif isinstance(exc, (paramiko.SSHException, EOFError)):
            reason = str(exc) or type(exc).__name__
            if not self.is_active():
                reason = "the SSH connection was lost"
        else:
            return False
        raise RemoteError(f"ssh {self.display}: cannot {self.op} {self.path}: "
                          f"{_one_line(reason)}") from exc


PREFETCH_FRAME = "_prefetch_thread"  # paramiko's SFTPFile read-ahead thread
_hook_lock = threading.Lock()
_hook_installed = False


def _in_prefetch_thread(tb: Any) -> bool:
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == PREFETCH_FRAME and "paramiko" in code.co_filename:
            return True
        tb = tb.tb_next
    return False


def quiet_prefetch_threads() -> None:
    """Keep paramiko's read-ahead thread from printing a traceback when the connection
    dies under a download: the download itself then fails with a one-line RemoteError.
    Exceptions of every other thread still reach the previous ``threading.excepthook``."""
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        previous = threading.excepthook

        def hook(args: Any) -> None:
            if _in_prefetch_thread(args.exc_traceback):
                return
            previous(args)

        threading.excepthook = hook
        _hook_installed = True


def file_info(path: str, attrs: Any) -> FileInfo:
    """The :class:`FileInfo` of SFTP attributes got without following links (lstat)."""
    mode = attrs.st_mode or 0
    kind = ("link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode)
            else "file" if stat.S_ISREG(mode) else "other")
    return FileInfo(path, kind, attrs.st_size or 0, float(attrs.st_mtime or 0), mode & 0o777)


def part_path(local: Path) -> Path:
    """Where a download to ``local`` is written before it is renamed into place."""
    return local.with_name(f".{local.name}.part")


def resume_offset(part_size: int | None, remote_size: int) -> int:
    """Where a download continues: the size of the ``.part`` already here (None: there is
    none), or 0 (start again) when that is larger than the remote file. A part of a file
    that has changed since is not detected here: tree transfers check the sha256."""
    if part_size is None or part_size > remote_size:
        return 0
    return part_size


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), name)


def parse_sha256sum(output: str, paths: Sequence[str]) -> list[str]:
    """The digests that ``sha256sum -- PATHS...`` printed, in the order of ``paths``.

    Each line must name its path (GNU's ``\\``-prefixed lines, for names with a backslash
    or newline, are unescaped; names not valid UTF-8 are not compared). ValueError when the
    output does not fit."""
    lines = output.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(paths):
        raise ValueError(f"{len(lines)} lines for {len(paths)} files")
    digests: list[str] = []
    for line, path in zip(lines, paths):
        escaped = line.startswith("\\")
        body = line[1:] if escaped else line
        digest, sep, name = body[:64], body[64:66], body[66:]
        if not _DIGEST.match(digest) or sep not in ("  ", " *"):
            raise ValueError(f"not a sha256sum line: {_one_line(line)[:100]!r}")
        if escaped:
            name = _unescape(name)
        if name != path and "\ufffd" not in name:
            raise ValueError(f"a line for {name!r} where {path!r} was expected")
        digests.append(digest)
    return digests


def checksum_failure(stderr: str, paths: Sequence[str]) -> tuple[str, str]:
    """(path, reason) of the first file ``sha256sum`` complained about on ``stderr``;
    when none is named, all of ``paths`` and the whole of stderr."""
    for line in stderr.splitlines():
        for path in paths:
            head = f"{path}: "
            at = line.find(head)
            if at >= 0 and (at == 0 or line[at - 2:at] == ": "):
                return path, _one_line(line[at + len(head):])
    where = paths[0] if len(paths) == 1 else f"{paths[0]} (or one of {len(paths) - 1} more)"
    return where, _one_line(stderr) or "sha256sum failed"
