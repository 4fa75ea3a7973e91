"""Atomic file writes and the XDG directories."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def _replacing(path: Path, mode: int) -> Iterator[str]:
    """A temp file beside ``path`` that replaces it (with ``mode``) when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    with _replacing(path, mode) as tmp, open(tmp, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def atomic_copy(src: Path, dst: Path, mode: int = 0o644) -> Path:
    """Copy ``src`` to ``dst`` atomically."""
    dst = Path(dst)
    with _replacing(dst, mode) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    base = Path(value) if value and os.path.isabs(value) else Path.home() / default
    return base / "hpc-dl4mic"


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/hpc-dl4mic`` (downloads, the default image cache)."""
    return _xdg("XDG_CACHE_HOME", ".cache")


def default_image_cache() -> Path:
    """This machine's image cache: ``$HPC_DL4MIC_CACHE`` or ``~/.cache/hpc-dl4mic/images``."""
    env = os.environ.get("HPC_DL4MIC_CACHE")
    return Path(env).expanduser() if env else cache_home() / "images"


def config_home() -> Path:
    """``$XDG_CONFIG_HOME/hpc-dl4mic`` (profiles)."""
    return _xdg("XDG_CONFIG_HOME", ".config")


def state_home() -> Path:
    """``$XDG_STATE_HOME/hpc-dl4mic`` (sessions)."""
    return _xdg("XDG_STATE_HOME", ".local/state")


def safe_name(name: str, limit: int = 60) -> str:
    """``name`` as a word for file names, SLURM job names and run/session ids: every character
    outside ``A-Z a-z 0-9 _ . + -`` becomes ``_`` (a config folder may be called anything)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:limit] or "_"
