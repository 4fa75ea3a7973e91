"""Validating and serialising converted notebooks, and writing them atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import NotebookError
from ..fsutil import atomic_write
from .sections import _src


def write_notebook(nb: Any, path: Path) -> None:
    """Validate ``nb`` (nbformat v4) and write it atomically (temp file + rename), creating
    missing parent folders."""
    path = Path(path)
    _validate(nb, f"{path}: converted notebook is")
    text = _dumps(nb)
    try:
        atomic_write(path, text.encode("utf-8"))
    except OSError as exc:
        raise NotebookError(f"{path}: cannot write notebook ({exc.strerror or exc})") from None


def notebook_text(nb: Any, where: str = "converted notebook") -> str:
    """``nb`` validated (nbformat v4) and serialised exactly as :func:`write_notebook` does."""
    _validate(nb, f"{where}:")
    return _dumps(nb)


def _validate(nb: Any, error_start: str) -> None:
    import nbformat

    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise NotebookError(f"{error_start} not valid nbformat v4 ({first})") from None


def _dumps(nb: Any) -> str:
    """nbformat's v4 JSON (sorted keys, indent 1, sources split in lines) plus a newline.

    Converted notebooks have no outputs: they are written directly, which is twice as fast
    as ``nbformat.writes`` (deep copy + second validation) and gives the same text.
    """
    import nbformat

    if any(c.get("outputs") or c.get("attachments") for c in nb["cells"]):
        return nbformat.writes(nb) + "\n"
    shallow = dict(nb)
    shallow["metadata"] = {k: v for k, v in nb["metadata"].items()
                           if k not in ("orig_nbformat", "orig_nbformat_minor", "signature")}
    shallow["cells"] = []
    for cell in nb["cells"]:  # as nbformat's split_lines and strip_transient do
        meta = {k: v for k, v in cell.get("metadata", {}).items() if k != "trusted"}
        shallow["cells"].append(dict(cell, source=_src(cell).splitlines(True), metadata=meta))
    return json.dumps(shallow, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
