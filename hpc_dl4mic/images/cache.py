"""A content-addressed folder of SIF images on a host (this machine, or a cluster's shared
filesystem): the one place for the cache layout, image records and file modes.

Layout::

    CACHE/<name>-<key16>.sif     the image (renamed into place only when complete)
    CACHE/<name>-<key16>.json    its record: name, full key, sha256, size, date, labels, ...
    CACHE/.tmp/                  build folders and partial images (never listed as images)

Modes, wherever the cache lives: in a group-writable (shared) cache folder images and
records are 0664 and the folders it creates 2775; otherwise 0644 and 0755. ``.tmp`` is
3770 (every member may build, sticky) in a shared cache, else 0700; build folders 0700.
A cache folder that does not exist yet is shared when its nearest existing parent is.

The key (see :mod:`.inputs`) hashes everything that determines the image, so a second
build of the same input is found here without calling apptainer.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError, RemoteError
from ..fsutil import default_image_cache

if TYPE_CHECKING:
    from ..remote.host import FileInfo, Host
    from .hostlock import LockState

KEY_CHARS = 16
NAME_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
STALE_TMP_SECONDS = 24 * 3600
TMP = ".tmp"
BUILT = "image.sif"  # the image inside a build folder


def default_cache_dir() -> Path:
    """``$HPC_DL4MIC_CACHE`` or ``~/.cache/hpc-dl4mic/images``."""
    return default_image_cache()


def image_stem(name: str, key: str) -> str:
    """File stem of an image in the cache: ``<name>-<first 16 hex of key>``."""
    return f"{NAME_SAFE.sub('_', name)}-{key[:KEY_CHARS]}"


# -- the mode policy ---------------------------------------------------------------------

def is_shared(dir_mode: int) -> bool:
    """A group-writable cache folder is shared by its group."""
    return bool(dir_mode & 0o020)


def file_mode_for(dir_mode: int) -> int:
    """Images and records: group-writable too in a shared cache."""
    return 0o664 if is_shared(dir_mode) else 0o644


def dir_mode_for(shared: bool) -> int:
    """Folders the cache creates (the cache folder and missing parents)."""
    return 0o2775 if shared else 0o755


def tmp_dir_mode(cache_mode: int) -> int:
    """``.tmp`` in a shared (group-writable) cache lets every member build (sticky, setgid);
    in a private cache it is private."""
    return 0o3770 if is_shared(cache_mode) else 0o700


# -- hosts -------------------------------------------------------------------------------

def local_host() -> Host:
    from ..remote.localhost import LocalHost

    return LocalHost()


def is_local(host: Host) -> bool:
    """Whether ``host`` is this machine (messages leave out "on HOST" then)."""
    return host.local


def on_host(host: Host) -> str:
    """`` on user@cluster`` for messages; '' for this machine."""
    return "" if is_local(host) else f" on {host.display}"


def folder_mode(host: Host, path: str) -> int:
    """Permission bits of a folder (of its target when ``path`` is a link); 0 if missing."""
    info = host.stat(path)
    if info is None:
        return 0
    if info.kind != "link":
        return info.mode
    found = host.run(["stat", "-L", "-c", "%a", "--", path], check=False, timeout=60)
    try:
        return int(found.stdout.strip(), 8)
    except ValueError:
        return 0


def is_folder(host: Host, path: str) -> bool:
    """Whether ``path`` is a folder or a link (taken to point at one)."""
    info = host.stat(path)
    return info is not None and info.kind in ("dir", "link")


def move(host: Host, src: str, dst: str) -> None:
    """Rename ``src`` to ``dst`` on the host (same filesystem: atomic)."""
    host.run(["mv", "-f", "--", src, dst], timeout=120)


def remove_tree(host: Host, path: str) -> None:
    """``rm -rf`` a folder on the host (best effort)."""
    host.run(["rm", "-rf", "--", path], check=False, timeout=120)


def file_sha256(path: Path, chunk: int = 4 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# -- records -----------------------------------------------------------------------------

@dataclass
class ImageRecord:
    """What the cache knows about one image (the ``.json`` beside the ``.sif``)."""

    name: str
    key: str
    sha256: str
    size: int
    created: float
    base: str = ""
    tool_version: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # input -> sha256 (what the key hashed)

    @property
    def stem(self) -> str:
        return image_stem(self.name, self.key)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def parse_record(text: bytes | str) -> ImageRecord | None:
    try:
        data = json.loads(text)
        return ImageRecord(**data) if isinstance(data, dict) else None
    except (ValueError, TypeError):
        return None


def read_record(host: Host, path: str) -> ImageRecord | None:
    """The record at ``path`` on ``host``; None when missing or unreadable."""
    try:
        return parse_record(host.read_file(path))
    except (RemoteError, OSError):
        return None


# -- the cache ---------------------------------------------------------------------------

class ImageCache:
    """One cache folder on a host (default: this machine). Paths are returned as
    :class:`~pathlib.Path` objects naming paths on that host."""

    def __init__(self, directory: Path | str | None = None, host: Host | None = None, *,
                 label: str = "--cache") -> None:
        self.host = host if host is not None else local_host()
        if is_local(self.host):
            self.directory = Path(directory or default_cache_dir()).expanduser().resolve()
        else:
            if directory is None:
                raise InputError("a cache folder on a cluster must be named")
            from ..remote.host import expand_home

            text = str(directory)
            self.directory = Path(expand_home(text, self.host.home()) if text.startswith("~")
                                  else text)
        self.label = label

    @classmethod
    def existing(cls, directory: Path | None = None, host: Host | None = None) -> ImageCache:
        """The cache in ``directory`` (default :func:`default_cache_dir`), which must exist:
        for commands that only read or tidy a cache."""
        cache = cls(directory, host)
        if not is_folder(cache.host, cache.root):
            label = ("--cache" if directory else "$HPC_DL4MIC_CACHE"
                     if os.environ.get("HPC_DL4MIC_CACHE") else "image cache")
            raise InputError(f"{label} {cache.directory}: no such folder "
                             "(`build` or `cache build` creates it)")
        return cache

    # -- layout ---------------------------------------------------------------------------
    @property
    def root(self) -> str:
        return str(self.directory)

    def sif_path(self, name: str, key: str) -> Path:
        return self.directory / f"{image_stem(name, key)}.sif"

    def record_path(self, name: str, key: str) -> Path:
        return self.directory / f"{image_stem(name, key)}.json"

    @property
    def tmp_dir(self) -> Path:
        return self.directory / TMP

    def _dir_mode(self) -> int:
        """The cache folder's permission bits (through a link: its target's)."""
        return folder_mode(self.host, self.root)

    def file_mode(self) -> int:
        """The mode of images and records here (see the module's mode policy)."""
        return file_mode_for(self._dir_mode())

    def ensure(self) -> None:
        """Create the folder and ``.tmp`` with the policy's modes; fail early (one line)
        when the cache cannot be written, before a build of many minutes."""
        host = self.host
        try:
            info = host.stat(self.root)
            if info is None:
                host.makedirs(self.root, mode=dir_mode_for(self._parent_shared()))
            elif info.kind not in ("dir", "link"):
                raise InputError(f"{self.label} {self.directory}: not a folder")
            if host.stat(str(self.tmp_dir)) is None:
                host.makedirs(str(self.tmp_dir), mode=0o700)
                host.chmod(str(self.tmp_dir), tmp_dir_mode(self._dir_mode()))
        except RemoteError as exc:
            reason = str(exc).rsplit(": ", 1)[-1]
            raise InputError(f"{self.label} {self.directory}: cannot create: {reason}") from None
        probe = f"{self.root}/.write-test-{os.getpid()}-{time.time_ns()}"
        try:
            host.write_file(probe, b"", mode=0o600)
        except RemoteError:
            raise InputError(f"{self.label} {self.directory}: not writable by this user"
                             ) from None
        host.remove(probe)

    def _parent_shared(self) -> bool:
        parent = posixpath.dirname(self.root)
        while parent and parent != posixpath.dirname(parent):
            if self.host.stat(parent) is not None:
                return is_shared(folder_mode(self.host, parent))
            parent = posixpath.dirname(parent)
        return False

    # -- lookup ---------------------------------------------------------------------------
    def lookup(self, name: str, key: str) -> ImageRecord | None:
        """The record of a complete image with this key, or None (cheap: no hashing)."""
        record = read_record(self.host, str(self.record_path(name, key)))
        if record is None or record.key != key:
            return None
        sif = self.host.stat(str(self.sif_path(name, key)))
        if sif is None or sif.kind != "file" or sif.size != record.size:
            return None  # a truncated/replaced SIF is not a hit; verify says why
        return record

    def _listing(self) -> list[FileInfo]:
        return self.host.listdir(self.root) if is_folder(self.host, self.root) else []

    def records(self) -> list[ImageRecord]:
        """Every image record, newest first."""
        out = [r for f in self._listing() if f.name.endswith(".json") and f.kind == "file"
               and (r := read_record(self.host, f.path))]
        return sorted(out, key=lambda r: (-r.created, r.name))

    # -- adding ---------------------------------------------------------------------------
    def new_tmp_dir(self, stem: str) -> Path:
        """A fresh private build folder under ``.tmp``."""
        self.ensure()
        path = f"{self.tmp_dir}/{stem}.{os.getpid()}.{time.time_ns()}"
        self.host.makedirs(path, mode=0o700)
        return Path(path)

    def lock_path(self, name: str, key: str) -> Path:
        """The build lock of one image: ``.tmp/<stem>.lock``."""
        return self.tmp_dir / f"{image_stem(name, key)}.lock"

    def lock_mode(self) -> int:
        """The lock file's mode: 0660 in a shared cache (every member may lock it), 0600
        in a private one; never world-writable."""
        return 0o660 if is_shared(self._dir_mode()) else 0o600

    @contextmanager
    def build_lock(self, name: str, key: str, *,
                   say: Callable[[str], None] | None = None) -> Iterator[LockState]:
        """Hold the lock of one image while it is built, so that builds of the same image
        into this cache run one after the other (the later ones then find it cached);
        yields a :class:`~.hostlock.LockState` (did it wait, for whom).

        An exclusive ``flock`` on ``.tmp/<stem>.lock``, released by the kernel if its
        holder dies: on this machine held by this process; on a cluster by a holder process
        there (:class:`~.hostlock.HostLock`), which ends when this command does."""
        from .hostlock import HostLock, LockState

        say = say or (lambda _line: None)
        if not is_local(self.host):
            self.ensure()
            with HostLock(self.host, str(self.lock_path(name, key)), mode=self.lock_mode(),
                          what=image_stem(name, key), say=say) as state:
                yield state
            return
        import fcntl

        self.ensure()
        path = self.lock_path(name, key)
        state = LockState()
        started = time.monotonic()
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, self.file_mode())
            except PermissionError:  # another member's lock in a shared cache
                fd = os.open(path, os.O_RDONLY)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not state.waited:
                        say(f"waiting for another build of {image_stem(name, key)} into "
                            f"{self.directory} (lock {path})")
                    state.waited = True
                    fcntl.flock(fd, fcntl.LOCK_EX)
                try:  # the holder before us may have removed the file: lock the new one
                    same = os.stat(path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
            except BaseException:
                os.close(fd)
                raise
            if same:
                break
            os.close(fd)
        state.seconds = time.monotonic() - started
        try:
            yield state
        finally:
            try:
                path.unlink()
            except OSError:
                pass  # another member's file in a sticky .tmp: prune removes it later
            os.close(fd)

    def add(self, built_sif: Path | str, record: ImageRecord) -> Path:
        """Move a complete image into place (rename, same filesystem) and write its record,
        both with the cache's file mode; in a shared cache the image gets the cache
        folder's group (as the record does from the setgid folder), so that every member's
        cache check finds and reads it."""
        target = self.sif_path(record.name, record.key)
        dir_mode = self._dir_mode()
        mode = file_mode_for(dir_mode)
        if is_shared(dir_mode):  # built in a private folder: it has the builder's own group
            self.host.run(["chgrp", f"--reference={self.root}", "--", str(built_sif)],
                          check=False, timeout=60)
        self.host.chmod(str(built_sif), mode)
        move(self.host, str(built_sif), str(target))
        self.host.write_file(str(self.record_path(record.name, record.key)), record.to_json(),
                             mode=mode)
        return target

    def remove(self, record: ImageRecord) -> None:
        self.host.remove(str(self.sif_path(record.name, record.key)))
        self.host.remove(str(self.record_path(record.name, record.key)))

    # -- maintenance ----------------------------------------------------------------------
    def orphans(self) -> list[Path]:
        """SIFs without a record and records without a SIF."""
        files = [f for f in self._listing() if f.kind == "file"]
        sifs = {f.name[:-4]: f.path for f in files if f.name.endswith(".sif")}
        recs = {f.name[:-5]: f.path for f in files if f.name.endswith(".json")}
        return sorted([Path(p) for s, p in sifs.items() if s not in recs]
                      + [Path(p) for s, p in recs.items() if s not in sifs])

    def stale_tmp(self, older_than: float = STALE_TMP_SECONDS) -> list[Path]:
        """Leftovers of interrupted builds."""
        if not is_folder(self.host, str(self.tmp_dir)):
            return []
        limit = time.time() - older_than
        return sorted(Path(f.path) for f in self.host.listdir(str(self.tmp_dir))
                      if f.mtime < limit)

    def prune(self, *, keep: int | None = None, orphans: bool = False,
              tmp_older_than: float = STALE_TMP_SECONDS, dry_run: bool = False) -> list[Path]:
        """Remove all but the newest ``keep`` images per notebook, orphans, stale temp files."""
        removed: list[Path] = []
        if keep is not None:
            if keep < 0:
                raise InputError(f"--keep {keep}: must be 0 or more")
            seen: dict[str, int] = {}
            for record in self.records():
                seen[record.name] = seen.get(record.name, 0) + 1
                if seen[record.name] > keep:
                    removed += [self.sif_path(record.name, record.key),
                                self.record_path(record.name, record.key)]
        if orphans:
            removed += self.orphans()
        removed += self.stale_tmp(tmp_older_than)
        if not dry_run:
            for path in removed:
                info = self.host.stat(str(path))
                if info is not None and info.kind == "dir":
                    remove_tree(self.host, str(path))
                else:
                    self.host.remove(str(path))
        return removed
