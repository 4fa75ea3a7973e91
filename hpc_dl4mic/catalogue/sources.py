"""The notebook and requirements files of a config: a local file the user names, or the
config's URL downloaded once into the XDG cache."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError
from ..fsutil import atomic_write, cache_home
from .config import NotebookConfig

DOWNLOAD_TIMEOUT = 30.0


def _local(path: Path, option: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{option} {path}: no such file")
    return path.resolve()


def download(url: str, hint: str) -> Path:
    """``url`` from the download cache, downloading it on first use; ``hint`` ends the error
    when that fails (how to pass a local copy to the command that is running)."""
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
        raise InputError(f"cannot download {url} ({reason}); {hint}") from None
    return atomic_write(target, data)


def notebook_path(config: NotebookConfig, override: Path | None,
                  hint: str = "pass a local copy with --notebook PATH") -> Path:
    """The notebook file to use for ``config``."""
    if override is not None:
        return _local(override, "--notebook")
    return download(config.notebook_url, hint)


def requirements_path(config: NotebookConfig, override: Path | None,
                      hint: str = "pass a local copy with --requirements PATH") -> Path:
    """The requirements file to use for ``config``."""
    if override is not None:
        return _local(override, "--requirements")
    return download(config.requirements_url, hint)


def folder_hint(option: str, directory: Path | None, filename: str) -> str:
    """The download hint for commands that search a folder (``cache build --notebook-dir``)."""
    if directory is None:
        return f"pass a folder holding {filename} with {option} DIR"
    return f"no {filename} under {option} {directory}: put a copy there"


def notebook_target(target: str, override: Path | None = None
                    ) -> tuple[Path, NotebookConfig | None]:
    """A TARGET that may also be an ``.ipynb`` path: (notebook file, its config or None)."""
    from .config import resolve_target

    if target.endswith(".ipynb"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise InputError(f"{target}: no such notebook file")
        return path.resolve(), None
    config = resolve_target(target)
    return notebook_path(config, override), config


def _same_file(path: Path, other: Path) -> bool:
    try:
        return path.exists() and os.path.samefile(path, other)
    except OSError:
        return False


def convert_output(source: Path, output: str | Path | None, mode: str,
                   say: Callable[[str], None] | None = None) -> Path:
    """Where ``convert`` writes: ``output`` as given (a folder when it exists as one or ends
    with a slash: the raw string counts, as pathlib drops the slash), else ``./<stem>.ipynb``
    (``.batch.ipynb`` in batch mode).

    The input is never overwritten: an ``-o`` naming it is an error, and a default name that
    would hit it becomes ``<stem>.hpc.ipynb`` (``say`` is told)."""
    suffix = ".ipynb" if mode == "interactive" else ".batch.ipynb"
    name = source.stem + suffix
    raw = None if output is None else str(output)
    if raw is None:
        path, chosen = Path(name), True
    elif raw.endswith(("/", os.sep)) or Path(raw).expanduser().is_dir():
        path, chosen = Path(raw).expanduser() / name, True
    else:
        path, chosen = Path(raw).expanduser(), False
    if _same_file(path, source):
        if not chosen:
            raise InputError(f"-o {raw}: that is the input notebook {source}, which is never "
                             "overwritten; pass another file name with -o")
        path = path.with_name(source.stem + ".hpc" + suffix)
        if say is not None:
            say(f"{source.name} is the input notebook: writing {path} instead (-o to choose)")
    return path


def convert_target(target: str, *, mode: str, output: str | Path | None = None,
                   notebook: Path | None = None, sections: str | None = None,
                   renumber: bool = False, data_dir: str = "/data",
                   results_dir: str = "/results",
                   say: Callable[[str], None] | None = None) -> Path:
    """``hpc-dl4mic convert``: write the converted notebook (atomically, creating parent
    folders; never over the input); returns its path."""
    import hashlib

    from .. import __version__
    from ..notebooks.convert import convert, read_notebook, write_notebook

    source, config = notebook_target(target, notebook)
    output = convert_output(source, output, mode, say)
    tokens = sections.split() if sections is not None else (
        list(config.sections_to_remove) if config else [])
    converted = convert(read_notebook(source), mode=mode, sections_to_remove=tokens,
                        renumber=renumber, source_name=source.name,
                        config_name=config.name if config else "",
                        source_sha256=hashlib.sha256(source.read_bytes()).hexdigest(),
                        tool_version=__version__, data_dir=data_dir, results_dir=results_dir)
    write_notebook(converted, output)
    return output


def target_internet(target: str, *, notebook: Path | None = None,
                    sections: str | None = None) -> list[dict]:
    """The sections of a TARGET's notebook that download (``notebooks.internet``), after its
    config's sections (or ``sections``) are removed."""
    from ..notebooks.convert import internet_summary, read_notebook

    source, config = notebook_target(target, notebook)
    tokens = sections.split() if sections is not None else (
        list(config.sections_to_remove) if config else [])
    return internet_summary(read_notebook(source), tokens)


def target_params(target: str, *, notebook: Path | None = None, sections: str | None = None):
    """The form fields of a TARGET's notebook (after its config's sections are removed)."""
    from ..notebooks.convert import convert, read_notebook
    from ..notebooks.params import extract_params

    source, config = notebook_target(target, notebook)
    nb = read_notebook(source)
    tokens = sections.split() if sections is not None else (
        list(config.sections_to_remove) if config else [])
    if tokens:
        nb = convert(nb, mode="interactive", sections_to_remove=tokens)
        meta = nb.get("metadata", {}).get("hpc_dl4mic", {})
        if meta.get("parameters") is not None:
            from ..notebooks.params import ParamSpec

            return [ParamSpec(**p) if isinstance(p, dict) else p for p in meta["parameters"]]
    return extract_params(nb)
