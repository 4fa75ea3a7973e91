"""File trees between this machine and a :class:`~hpc_dl4mic.remote.host.Host`, over the
host's per-file primitives: unchanged files are skipped (so a re-run resumes an interrupted
copy), symbolic links are left out (a session's ``data`` link must never pull the data
back), and every copied file is checked against its sha256 on the other side."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError, RemoteError
from .host import FileInfo, TreeReport

if TYPE_CHECKING:
    from .host import Host

Say = Callable[[str], None]
CHECKSUM_BATCH = 200  # paths per checksum command (argv length stays far below limits)


def sha256_file(path: Path, chunk: int = 4 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def batched_checksums(host: Host, paths: Sequence[str]) -> dict[str, str]:
    sums: dict[str, str] = {}
    for i in range(0, len(paths), CHECKSUM_BATCH):
        sums.update(host.checksums(paths[i:i + CHECKSUM_BATCH]))
    return sums


def walk_remote(host: Host, root: str) -> tuple[list[tuple[str, FileInfo]], list[str], int]:
    """(relative path, info) of every file under ``root``, its folders, and links skipped."""
    files: list[tuple[str, FileInfo]] = []
    dirs: list[str] = []
    links = 0
    pending = [""]
    while pending:
        rel = pending.pop()
        for entry in sorted(host.listdir(f"{root}/{rel}" if rel else root),
                            key=lambda e: e.name):
            sub = f"{rel}/{entry.name}" if rel else entry.name
            if entry.kind == "dir":
                dirs.append(sub)
                pending.append(sub)
            elif entry.kind == "file":
                files.append((sub, entry))
            else:
                links += 1
    return files, dirs, links


def put_tree(host: Host, local: Path, remote: str, *, say: Say | None = None) -> TreeReport:
    """Copy the folder ``local`` to ``remote`` on the host (folders 0700, files 0600)."""
    local = Path(local).expanduser()
    if not local.is_dir():
        raise InputError(f"{local}: not a folder")
    host.makedirs(remote, mode=0o700)
    copied: list[str] = []
    skipped = links = 0
    for path in sorted(local.rglob("*")):
        rel = path.relative_to(local).as_posix()
        target = f"{remote}/{rel}"
        if path.is_symlink():
            links += 1
        elif path.is_dir():
            host.makedirs(target, mode=0o700)
        elif path.is_file():
            st = path.stat()
            there = host.stat(target)
            if (there is not None and there.kind == "file" and there.size == st.st_size
                    and int(there.mtime) == int(st.st_mtime)):
                skipped += 1
                continue
            host.put(path, target, mode=0o600)
            copied.append(rel)
            if say is not None:
                say(f"uploaded {rel}")
    sums = batched_checksums(host, [f"{remote}/{rel}" for rel in copied])
    for rel in copied:
        if sums.get(f"{remote}/{rel}") != sha256_file(local / rel):
            host.remove(f"{remote}/{rel}")
            raise RemoteError(f"upload {local / rel}: checksum mismatch on {host.display}; "
                              "run the command again")
    return TreeReport(tuple(copied), skipped, links)


def get_tree(host: Host, remote: str, local: Path, *, say: Say | None = None) -> TreeReport:
    """Copy the folder ``remote`` on the host here; an interrupted copy continues where it
    stopped (``.part`` files), unchanged files are skipped, mtimes are kept."""
    info = host.stat(remote)
    if info is None or info.kind != "dir":
        raise RemoteError(f"{remote}: no such folder on {host.display}")
    local = Path(local).expanduser()
    files, dirs, links = walk_remote(host, remote)
    local.mkdir(parents=True, exist_ok=True)
    for rel in dirs:
        (local / rel).mkdir(parents=True, exist_ok=True)
    sums = batched_checksums(host, [f"{remote}/{rel}" for rel, _ in files])
    copied: list[str] = []
    skipped = 0
    for rel, entry in files:
        path, want = local / rel, sums.get(f"{remote}/{rel}")
        if path.is_file() and not path.is_symlink() and sha256_file(path) == want:
            skipped += 1
            continue
        host.get(f"{remote}/{rel}", path, resume=True)
        if sha256_file(path) != want:
            path.unlink(missing_ok=True)
            raise RemoteError(f"fetch {remote}/{rel}: checksum mismatch; run fetch again")
        if entry.mtime:
            os.utime(path, (entry.mtime, entry.mtime))
        copied.append(rel)
        if say is not None:
            say(f"fetched {path}")
    return TreeReport(tuple(copied), skipped, links)
