"""The notebook and requirements files of a config: a local file the user names, or the
config's URL downloaded once into the XDG cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .config import NotebookConfig
from .errors import InputError
from .fsutil import atomic_write, cache_home

DOWNLOAD_TIMEOUT = 30.0


def _local(path: Path, option: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{option} {path}: no such file")
    return path.resolve()


def fetch(url: str, option: str) -> Path:
    """``url`` from the download cache, fetching it on first use."""
    import urllib.error
    import urllib.request

    name = url.rsplit("/", 1)[-1] or "download"
    target = cache_home() / "downloads" / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if target.is_file():
        return target
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"cannot download {url} ({reason}); pass a local copy with "
                         f"{option} PATH") from None
    return atomic_write(target, data)


def notebook_path(config: NotebookConfig, override: Path | None) -> Path:
    """The notebook file to use for ``config``."""
    if override is not None:
        return _local(override, "--notebook")
    return fetch(config.notebook_url, "--notebook")


def requirements_path(config: NotebookConfig, override: Path | None) -> Path:
    """The requirements file to use for ``config``."""
    if override is not None:
        return _local(override, "--requirements")
    return fetch(config.requirements_url, "--requirements")
