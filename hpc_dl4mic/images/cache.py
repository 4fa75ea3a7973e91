"""A content-addressed folder of SIF images (local, or shared on a cluster filesystem).

Layout::

    CACHE/<name>-<key16>.sif     the image (renamed into place only when complete)
    CACHE/<name>-<key16>.json    its record: name, full key, sha256, size, date, labels, ...
    CACHE/.tmp/                  build contexts and partial images (never listed as images)

The key (see :mod:`hpc_dl4mic.build`) hashes everything that determines the image, so a
second build of the same input is found here without calling apptainer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError
from ..fsutil import atomic_write, cache_home

KEY_CHARS = 16
NAME_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
STALE_TMP_SECONDS = 24 * 3600


def default_cache_dir() -> Path:
    """``$HPC_DL4MIC_CACHE`` or ``~/.cache/hpc-dl4mic/images``."""
    env = os.environ.get("HPC_DL4MIC_CACHE")
    return Path(env).expanduser() if env else cache_home() / "images"


def image_stem(name: str, key: str) -> str:
    """File stem of an image in the cache: ``<name>-<first 16 hex of key>``."""
    return f"{NAME_SAFE.sub('_', name)}-{key[:KEY_CHARS]}"


def tmp_dir_mode(cache_mode: int) -> int:
    """``.tmp`` in a shared (group-writable) cache lets every member build (sticky, setgid);
    in a private cache it is private."""
    return 0o3770 if cache_mode & 0o020 else 0o700


def file_sha256(path: Path, chunk: int = 4 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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


class ImageCache:
    """One cache folder on this machine."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory or default_cache_dir()).expanduser().resolve()

    @classmethod
    def existing(cls, directory: Path | None = None) -> ImageCache:
        """The cache in ``directory`` (default :func:`default_cache_dir`), which must exist:
        for commands that only read or tidy a cache."""
        cache = cls(directory)
        if not cache.directory.is_dir():
            label = ("--cache" if directory else "$HPC_DL4MIC_CACHE"
                     if os.environ.get("HPC_DL4MIC_CACHE") else "image cache")
            raise InputError(f"{label} {cache.directory}: no such folder "
                             "(`build` or `cache build` creates it)")
        return cache

    # -- layout ---------------------------------------------------------------------------
    def sif_path(self, name: str, key: str) -> Path:
        return self.directory / f"{image_stem(name, key)}.sif"

    def record_path(self, name: str, key: str) -> Path:
        return self.directory / f"{image_stem(name, key)}.json"

    @property
    def tmp_dir(self) -> Path:
        return self.directory / ".tmp"

    def ensure(self) -> None:
        """Create the folder; a shared (group-writable) parent's group bits are kept."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if not self.tmp_dir.is_dir():
                self.tmp_dir.mkdir(exist_ok=True)
                os.chmod(self.tmp_dir, tmp_dir_mode(self.directory.stat().st_mode))
        except OSError as exc:
            raise InputError(f"--cache {self.directory}: cannot create: {exc.strerror}") from None
        if not os.access(self.directory, os.W_OK):
            raise InputError(f"--cache {self.directory}: not writable by this user")

    def file_mode(self) -> int:
        """Images are group-readable; group-writable too in a group-writable (shared) cache."""
        shared = self.directory.stat().st_mode & 0o020
        return 0o664 if shared else 0o644

    # -- lookup ---------------------------------------------------------------------------
    def lookup(self, name: str, key: str) -> ImageRecord | None:
        """The record of a complete image with this key, or None (cheap: no hashing)."""
        sif, rec = self.sif_path(name, key), self.record_path(name, key)
        if not (sif.is_file() and rec.is_file()):
            return None
        record = self._read_record(rec)
        if record is None or record.key != key or record.size != sif.stat().st_size:
            return None  # a truncated/replaced SIF is not a hit; verify says why
        return record

    def _read_record(self, path: Path) -> ImageRecord | None:
        try:
            data = json.loads(path.read_text())
            return ImageRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def records(self) -> list[ImageRecord]:
        """Every image record, newest first."""
        if not self.directory.is_dir():
            return []
        out = [r for p in self.directory.glob("*.json") if (r := self._read_record(p))]
        return sorted(out, key=lambda r: (-r.created, r.name))

    # -- adding ---------------------------------------------------------------------------
    def new_tmp_dir(self, stem: str) -> Path:
        self.ensure()
        path = self.tmp_dir / f"{stem}.{os.getpid()}.{time.monotonic_ns()}"
        path.mkdir(mode=0o700)
        return path

    def add(self, built_sif: Path, record: ImageRecord) -> Path:
        """Move a complete image into place (rename, same filesystem) and write its record."""
        target = self.sif_path(record.name, record.key)
        os.chmod(built_sif, self.file_mode())
        os.replace(built_sif, target)
        atomic_write(self.record_path(record.name, record.key),
                     json.dumps(record.to_dict(), indent=2) + "\n", mode=self.file_mode())
        return target

    def remove(self, record: ImageRecord) -> None:
        self.sif_path(record.name, record.key).unlink(missing_ok=True)
        self.record_path(record.name, record.key).unlink(missing_ok=True)

    # -- maintenance ----------------------------------------------------------------------
    def orphans(self) -> list[Path]:
        """SIFs without a record and records without a SIF."""
        if not self.directory.is_dir():
            return []
        sifs = {p.stem: p for p in self.directory.glob("*.sif")}
        recs = {p.stem: p for p in self.directory.glob("*.json")}
        return sorted([p for s, p in sifs.items() if s not in recs]
                      + [p for s, p in recs.items() if s not in sifs])

    def stale_tmp(self, older_than: float = STALE_TMP_SECONDS) -> list[Path]:
        """Leftovers of interrupted builds."""
        if not self.tmp_dir.is_dir():
            return []
        limit = time.time() - older_than
        return sorted(p for p in self.tmp_dir.iterdir() if p.lstat().st_mtime < limit)

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
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        return removed
