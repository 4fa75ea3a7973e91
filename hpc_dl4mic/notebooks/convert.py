"""Convert a ZeroCostDL4Mic (Colab) notebook into an interactive or a batch notebook.

:func:`convert` is pure: it returns a new notebook and leaves its input alone. The output is
deterministic (same input and options → same bytes), because converted notebooks are part
of the image's cache key: no timestamps, generated cells get fixed ids, code cell outputs
(left from someone's Colab run) and Colab's saved widget state are dropped. A missing
kernelspec becomes ``python3``.

The steps live beside this module: :mod:`.rewrites` (Colab-only lines, paths) with
:mod:`.versioncheck`, :mod:`.cells` (generated cells; their code is in :mod:`.cellcode`) and
:mod:`.write` (validation, serialisation, atomic write).

Common to both modes
--------------------
Sections
    A section heading is a markdown line ``#… [**]N.N.[**] Title`` (bold and trailing dot
    optional: ``# **1.3. Load key dependencies**``, ``## **6.1 Generate …**``); its token is
    the number with a trailing dot (``6.1.``) and its level the number's depth. Removing a
    token removes every cell from each heading carrying it up to the next numbered heading of
    the same or a higher level, or the next unnumbered heading whose markdown level is the
    same or higher (so ``7.`` stops at ``# **Thank you for using …**``). A token the notebook
    does not have is a :class:`NotebookError` naming it and listing the existing ones.
    Numbers are kept unless ``renumber=True``: then each remaining heading moves up by the
    number of removed siblings before it (DL4MicEverywhere's rule; CARE 2D without
    ``1.1. 1.2. 2. 6.3.``: 1.3 → 1.1, 3.x → 2.x, 7 → 6). Only heading lines change, not
    cross-references in the text.
Stripped (each line becomes a ``# [hpc-dl4mic] removed: …`` comment, or an equally
    indented ``pass`` inside a block)
    - ``!pip``/``%pip``/``!conda``/``!mamba``/``python -m pip`` ``install``/``uninstall``
      lines, ALL of them by default, including ``-r``/``-e``/``.`` installs which
      DL4MicEverywhere keeps: the image is read-only and compute nodes are offline, so the
      requirements file is the only source of packages. ``keep_local_installs=True`` keeps
      the ``-r``/``-e``/local-path ones as DL4MicEverywhere does.
    - ``from google.colab … import``/``import google.colab``, ``drive.mount(…)``,
      ``drive.flush_and_unmount()``, ``files.download(…)``/``files.upload(…)``,
      ``%tensorflow_version``, and any other line (comments too) naming google.colab;
      ``'google.colab' in sys.modules`` becomes ``False``.
Offline and read-only safe
    - The version check (the statements from the one that fetches
      ``raw.githubusercontent.com/…/Latest_Notebook_versions.csv`` through the following
      statements about the notebook version, located with :mod:`ast`) is wrapped in
      ``try/except`` with a 5 s socket timeout, and skipped at once when the environment
      variable ``HPC_DL4MIC_OFFLINE`` is set; the rest of the cell (PDF export functions)
      always runs.
    - ``'../' * n + 'requirements.txt'`` (a path toward the filesystem root) becomes
      ``<results_dir>/requirements.txt``; ``!pip freeze > FILE`` writes
      ``<results_dir>/FILE``.
    - The generated set-up cell creates the results dir and, when the working directory is
      not writable (notebook opened inside the image), changes into the results dir so that
      relative writes land there.
Path defaults
    A string field whose default is ``/content`` or starts with ``/content/`` gets
    ``<results_dir>`` if its name mentions output, result, save, model, export or predict,
    else ``<data_dir>`` (source, input, data, test, training …); a deeper Colab path keeps its
    last component (``/content/gdrive/MyDrive/x/FNET`` → ``/results/FNET``; Drive roots alone
    give the bare dir). Empty defaults stay empty, and other code (e.g. YOLOv2's
    ``os.chdir('/content/keras-yolo2/')``) is not rewritten.
Provenance
    ``nb.metadata["hpc_dl4mic"]``: tool and version, mode, source notebook name and SHA-256
    (of the file when known, else of the canonical JSON), config, removed sections, renumber
    flag, data/results dirs, a summary of the changes and every field
    (``params.spec_to_dict``), so ``params``/validation can work from a converted notebook.

Interactive mode
----------------
A set-up cell at the top holds every form (``HPC_DL4MIC_FORMS``: form key → field specs) and
small helpers. Before each code cell with fields, a form cell runs ``hpc_form(KEY)``, which
shows the fields as ipywidgets: string → Text, number → FloatText (an integral value comes
back as int when the default is an int), integer → IntText, boolean → Checkbox, slider →
IntSlider/FloatSlider, dropdown → Dropdown (Combobox with ``allow-input``), raw → Text (or a
Dropdown of its choices) whose text is evaluated in the notebook's namespace, date →
DatePicker; a tuple default (U-Net 3D's patch_size) is a Text evaluated as Python. Each
``NAME = … #@param`` line becomes ``NAME = hpc_value(KEY, "NAME")``. The form key is the
section token (``3.1.``; a second form in the same section is ``3.1.#2``). Values are saved
to ``<results_dir>/widget_values.json`` (``{key: {name: value}}``) whenever a code cell reads
them, and widgets start from the saved values (falling back to the default when a saved
value no longer fits). Nothing needs a click: run top to bottom, the notebook uses saved or
default values; re-running a form cell keeps the edited widgets. Without ipywidgets the
helpers print the values and use saved/default ones.

Batch mode
----------
The first cell, tagged ``parameters``, assigns every field name once with the default of its
FIRST field (a raw field: its literal value when the text is a non-string literal such as
``2``, else the expression text as a string, e.g. ``'Single_Images'``). papermill injects
the given values after it. The next generated cell works out which names were given: those
assigned by a cell run after the parameters cell (read from IPython's input history, so a
given value equal to the default counts as given) or whose value differs from the
parameters cell's default. It stores them in ``__hpc_dl4mic_injected__`` (name → value).
Without IPython's history (code run outside a kernel) only the comparison is left, so a
given value equal to the first default then does not reach later fields of other defaults.
papermill has no tuple literal: a tuple default (patch_size ``(128,128,8)``) is given as a
list and turned back into a tuple.

Repeated names: a given value applies everywhere. Every ``NAME = DEFAULT #@param`` line
becomes ``NAME = _hpc_param("NAME") if "NAME" in __hpc_dl4mic_injected__ else DEFAULT``, so
a field keeps a given value and otherwise sets its OWN default (a later section whose
default differs from the first keeps it, exactly as in Colab). A given raw value that is a
string is evaluated as a Python expression where the form line was.

A call of the notebook's PDF report (``pdf_export(…)``, ``qc_pdf_export(…)``) at the start of
a statement goes through ``hpc_dl4mic_report`` (:mod:`.reports`): a report that fails is one
line and an entry in ``skipped.jsonl``, and the run goes on to its next section.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotebookError
from .cells import PARAMETERS_MARK, VALUES_FILE, to_batch, to_interactive
from .internet import guard_internet
from .params import extract_params, spec_to_dict
from .reports import guard_reports
from .rewrites import REMOVED, Changes, common_rewrite, default_path
from .sections import _removed_cells, _renumber, _src, normalize_sections, section_headings
from .versioncheck import VERSION_CHECK_TIMEOUT
from .write import notebook_text, write_notebook

if TYPE_CHECKING:  # pragma: no cover
    from nbformat import NotebookNode

# re-exported: callers import these from here
__all__ = [
    "MODES", "PARAMETERS_MARK", "REMOVED", "VALUES_FILE", "VERSION_CHECK_TIMEOUT", "convert",
    "convert_file", "default_path", "notebook_text", "read_notebook", "section_headings",
    "write_notebook",
]

MODES = ("interactive", "batch")


# ------------------------------------------------------------------------------ reading


def read_notebook(path: Path) -> NotebookNode:
    """Read a notebook (any nbformat version, upgraded to v4); NotebookError if it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotebookError(f"{path}: cannot read notebook ({exc.strerror or exc})") from None
    return _parse(data, str(path))


def _parse(data: bytes, where: str) -> NotebookNode:
    import nbformat

    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NotebookError(f"{where}: not a notebook: invalid JSON ({detail})") from None
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw \
            or not isinstance(raw.get("nbformat"), int):
        raise NotebookError(f"{where}: not a Jupyter notebook (no 'nbformat' and 'cells' keys)")
    try:
        major, minor = nbformat.reader.get_version(raw)
        nb = nbformat.versions[major].to_notebook_json(raw, minor=minor)  # no validation here
        if major != 4:
            nb = nbformat.convert(nb, 4)
    except Exception as exc:  # nbformat raises assorted errors for malformed notebooks
        raise NotebookError(
            f"{where}: not a usable notebook ({type(exc).__name__}: {exc})") from None
    if not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{where}: not a Jupyter notebook ('cells' is not a list)")
    return nb



# ------------------------------------------------------------------------------ convert


def convert(nb: Any, *, mode: str, sections_to_remove: str | Iterable[str] | None = (),
            renumber: bool = False, source_name: str = "", config_name: str = "",
            source_sha256: str = "", tool_version: str = "", data_dir: str = "/data",
            results_dir: str = "/results", keep_local_installs: bool = False) -> NotebookNode:
    """A converted copy of ``nb`` (mode ``"interactive"`` or ``"batch"``); ``nb`` is unchanged."""
    import nbformat

    if mode not in MODES:
        raise NotebookError(f"mode {mode!r} is not one of: {', '.join(MODES)}")
    tokens = normalize_sections(sections_to_remove)
    name = source_name or "notebook"
    if not tool_version:
        from .. import __version__ as tool_version
    if not source_sha256:
        import hashlib

        canonical = json.dumps(nb, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        source_sha256 = hashlib.sha256(canonical.encode()).hexdigest()

    minor = int(nb.get("nbformat_minor", 0) or 0)
    cells = [_copy_cell(c, minor) for c in nb["cells"]]
    if tokens:
        drop = _removed_cells(cells, tokens, name)
        cells = [c for i, c in enumerate(cells) if i not in drop]
        if renumber:
            _renumber(cells, tokens)

    changes = Changes()
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        src, delta = common_rewrite(_src(cell), data_dir, results_dir, keep_local_installs)
        cell["source"] = src
        changes.add(delta)
    internet = guard_internet(cells, batch=mode == "batch")
    reports = guard_reports(cells) if mode == "batch" else []

    specs = extract_params({"cells": cells})
    if mode == "batch":
        cells = to_batch(cells, specs, minor, data_dir, results_dir)
    else:
        cells = to_interactive(cells, specs, minor, data_dir, results_dir)

    if minor >= 5:
        _ensure_ids(cells)
    out = nbformat.v4.new_notebook()
    out.nbformat, out.nbformat_minor = 4, minor
    out.metadata = {k: v for k, v in nb.get("metadata", {}).items()
                    if k != "widgets"}  # saved widget state of Colab's outputs, cleared below
    out.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                           "language": "python"})
    out.metadata["hpc_dl4mic"] = {
        "tool": "hpc-dl4mic",
        "tool_version": tool_version,
        "mode": mode,
        "source_notebook": source_name,
        "source_sha256": source_sha256,
        "config": config_name,
        "sections_removed": tokens,
        "renumbered": bool(renumber and tokens),
        "data_dir": data_dir,
        "results_dir": results_dir,
        "changes": changes.as_dict(),
        "internet": internet,
        "guarded_reports": reports,
        "parameters": [spec_to_dict(s) for s in specs],
    }
    out.cells = cells
    return nbformat.from_dict(out)


def internet_summary(nb: Any, sections_to_remove: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Per section of ``nb`` that downloads (once ``sections_to_remove`` are gone): what it
    fetches and what an offline node does with it in a batch run (:mod:`.internet`)."""
    converted = convert(nb, mode="batch", sections_to_remove=list(sections_to_remove),
                        tool_version="report")
    return list(converted.metadata["hpc_dl4mic"].get("internet", []))


def _copy_cell(cell: Any, minor: int) -> dict[str, Any]:
    # shallow: nbformat.from_dict at the end of convert() copies every dict and list
    skip = ("outputs", "source") if minor >= 5 else ("outputs", "source", "id")
    new = {k: v for k, v in cell.items() if k not in skip}
    new["source"] = _src(cell)
    if cell.get("cell_type") == "code":
        new["outputs"] = []
        new["execution_count"] = None
    return new


def _ensure_ids(cells: list[Any]) -> None:
    seen: set[str] = set()
    for i, cell in enumerate(cells):
        cid = cell.get("id")
        if not isinstance(cid, str) or not re.fullmatch(r"[a-zA-Z0-9-_]{1,64}", cid) or cid in seen:
            cid = f"hpc-dl4mic-cell-{i}"
            cell["id"] = cid
        seen.add(cid)


def convert_file(src: Path, dst: Path, **kw: Any) -> NotebookNode:
    """Read ``src``, :func:`convert` it (name and SHA-256 from the file), write ``dst``."""
    import hashlib

    src = Path(src)
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise NotebookError(f"{src}: cannot read notebook ({exc.strerror or exc})") from None
    nb = _parse(data, str(src))
    kw.setdefault("source_name", src.name)
    kw.setdefault("source_sha256", hashlib.sha256(data).hexdigest())
    out = convert(nb, **kw)
    write_notebook(out, Path(dst))
    return out


