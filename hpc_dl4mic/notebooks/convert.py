"""Convert a ZeroCostDL4Mic (Colab) notebook into an interactive or a batch notebook.

:func:`convert` is pure: it returns a new notebook and leaves its input alone. The output is
deterministic (same input and options → same bytes), because converted notebooks are part
of the image's cache key: no timestamps, generated cells get fixed ids, code cell outputs
(left from someone's Colab run) and Colab's saved widget state are dropped. A missing
kernelspec becomes ``python3``.

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
"""

from __future__ import annotations

import ast
import functools
import json
import os
import posixpath
import re
import shlex
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotebookError
from .params import PARAM_RE, ParamSpec, extract_params, parse_param_line, spec_to_dict
from .sections import (
    _removed_cells,
    _renumber,
    _src,
    normalize_sections,
    section_headings,
)

if TYPE_CHECKING:  # pragma: no cover
    from nbformat import NotebookNode

MODES = ("interactive", "batch")
VERSION_CHECK_TIMEOUT = 5
REMOVED = "# [hpc-dl4mic] removed:"
PARAMETERS_MARK = "# hpc-dl4mic: parameters cell"
VALUES_FILE = "widget_values.json"

_INSTALL_RE = re.compile(
    r"^(?P<indent>[ \t]*)[!%][ \t]*(?:sudo[ \t]+)?"
    r"(?:pip3?|conda|mamba|micromamba|python[\d.]*[ \t]+-m[ \t]+pip)[ \t]+"
    r"(?:install|uninstall)\b(?P<args>.*)$"
)
_LOCAL_INSTALL_RE = re.compile(
    r"(?:^|\s)(?:-r|--requirement|-e|--editable|\.{1,2}/?|/\S+|\./\S+)(?=\s|$)")
_COLAB_IMPORT_RE = re.compile(
    r"^[ \t]*(?:from[ \t]+google\.colab[\w.]*[ \t]+import\b|import[ \t]+google\.colab\b)")
_COLAB_CALL_RE = re.compile(
    r"^[ \t]*(?:drive\.(?:mount|flush_and_unmount)|files\.(?:download|upload))[ \t]*\("
)
_TF_VERSION_RE = re.compile(r"^[ \t]*%tensorflow_version\b")
_COLAB_MODULES_RE = re.compile(r"""(['"])google\.colab\1[ \t]+(not[ \t]+in|in)[ \t]+sys\.modules""")
_VERSION_URL_RE = re.compile(
    r"https?://raw\.githubusercontent\.com/\S*?Latest_(?:Notebook_versions|ZeroCostDL4Mic_Release)\.csv"
)
_VERSION_NAME_RE = re.compile(r"(?i)notebook_version")
_ROOT_REQUIREMENTS_RE = re.compile(
    r"""(['"])\.\./\1[ \t]*\*[ \t]*\(?[ \t]*\w+[ \t]*\)?[ \t]*\+[ \t]*(['"])requirements\.txt\2"""
)
_FREEZE_RE = re.compile(
    r"^(?P<indent>[ \t]*)!(?P<cmd>[ \t]*pip3?[ \t]+freeze)[ \t]*>[ \t]*(?P<target>\S+)[ \t]*$")
_MAGIC_RE = re.compile(r"^([ \t]*)(?:[!%]|[A-Za-z_][\w, ]*=[ \t]*[!%])")
_RESULTS_NAME_RE = re.compile(r"(?i)output|result|save|saving|model|export|predict")


@dataclass
class _Changes:
    install_lines: int = 0
    colab_lines: int = 0
    version_checks: int = 0
    redirected_writes: int = 0
    path_defaults: list[str] = field(default_factory=list)

    def add(self, other: tuple[int, int, int, int, tuple[str, ...]]) -> None:
        self.install_lines += other[0]
        self.colab_lines += other[1]
        self.version_checks += other[2]
        self.redirected_writes += other[3]
        self.path_defaults.extend(other[4])

    def frozen(self) -> tuple[int, int, int, int, tuple[str, ...]]:
        return (self.install_lines, self.colab_lines, self.version_checks,
                self.redirected_writes, tuple(self.path_defaults))

    def as_dict(self) -> dict[str, Any]:
        return {
            "removed_install_lines": self.install_lines,
            "removed_colab_lines": self.colab_lines,
            "offline_safe_version_checks": self.version_checks,
            "redirected_writes": self.redirected_writes,
            "path_defaults": list(self.path_defaults),
        }


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



# ------------------------------------------------------------------------------ rewrites


def _removed_line(indent: str, what: str) -> str:
    what = " ".join(what.split())
    if indent:
        return f"{indent}pass  {REMOVED} {what}"
    return f"{REMOVED} {what}"


def _open_parens(text: str) -> int:
    depth, quote = 0, ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
    return depth


_STRIP_TRIGGERS = ("install", "google.colab", "drive.", "files.", "tensorflow_version")
_LINE_TRIGGER_RE = re.compile(r"install|colab|drive\.|files\.|tensorflow_version")


def _strip_lines(src: str, changes: _Changes, keep_local_installs: bool) -> str:
    if not any(t in src for t in _STRIP_TRIGGERS):
        return src
    lines = src.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not _LINE_TRIGGER_RE.search(line):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        kind = ""
        m = _INSTALL_RE.match(line)
        if m and not (keep_local_installs and _LOCAL_INSTALL_RE.search(m.group("args"))):
            kind = "install"
        elif _COLAB_IMPORT_RE.match(line) or _TF_VERSION_RE.match(line):
            kind = "colab"
        elif _COLAB_CALL_RE.match(line):
            kind = "colab"
        elif "google.colab" in line and not _COLAB_MODULES_RE.search(line):
            kind = "colab"
        if not kind:
            if _COLAB_MODULES_RE.search(line):
                line = _COLAB_MODULES_RE.sub(
                    lambda mm: "True" if mm.group(2).startswith("not") else "False", line)
                line += "  # [hpc-dl4mic] not on Colab"
                changes.colab_lines += 1
            out.append(line)
            i += 1
            continue
        # swallow continuation lines (trailing backslash or open brackets)
        j = i
        depth = _open_parens(line) if kind == "colab" else 0
        while j + 1 < len(lines) and (lines[j].rstrip().endswith("\\") or depth > 0):
            j += 1
            depth += _open_parens(lines[j])
        if kind == "install":
            changes.install_lines += 1
            out.append(_removed_line(indent, line.strip()))
        else:
            changes.colab_lines += 1
            is_comment = line.lstrip().startswith("#")
            if "google.colab" in line:
                if not is_comment:
                    out.append(_removed_line(indent, "Colab-only import"))
            else:
                out.append(_removed_line(indent, line.strip()))
        i = j + 1
    return "\n".join(out)


def _redirect_writes(src: str, results_dir: str, changes: _Changes) -> str:
    if "requirements.txt" in src:
        target = repr(posixpath.join(results_dir, "requirements.txt"))
        src, n = _ROOT_REQUIREMENTS_RE.subn(target, src)
        changes.redirected_writes += n
    if "freeze" in src:
        lines = src.split("\n")
        for i, line in enumerate(lines):
            m = _FREEZE_RE.match(line)
            if m is None or m.group("target").startswith("$"):
                continue
            base = posixpath.basename(m.group("target").strip("'\"")) or "requirements.txt"
            dest = shlex.quote(posixpath.join(results_dir, base))
            lines[i] = f"{m.group('indent')}!{m.group('cmd').strip()} > {dest}"
            changes.redirected_writes += 1
        src = "\n".join(lines)
    return src


def _mask_magics(lines: Sequence[str]) -> list[str]:
    masked = []
    for line in lines:
        m = _MAGIC_RE.match(line)
        masked.append(f"{m.group(1)}pass" if m else line)
    return masked


def _version_check_span(lines: list[str]) -> tuple[int, int] | None:
    """0-based first and last line of the version-check statements, or None."""
    url_lines = [i for i, line in enumerate(lines)
                 if _VERSION_URL_RE.search(line) and not line.lstrip().startswith("#")]
    if not url_lines:
        return None
    parsed = _parse_around(lines, url_lines[0])
    if parsed is None:
        return _version_check_span_by_indent(lines, url_lines[0])
    tree, offset = parsed
    url_line = url_lines[0] + 1 - offset  # ast is 1-based

    def find(body: list[ast.stmt]) -> tuple[list[ast.stmt], int] | None:
        for idx, stmt in enumerate(body):
            if stmt.lineno <= url_line <= (stmt.end_lineno or stmt.lineno):
                for attr in ("body", "orelse", "finalbody"):
                    inner = getattr(stmt, attr, None)
                    if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                        found = find(inner)
                        if found:
                            return found
                for handler in getattr(stmt, "handlers", []) or []:
                    found = find(handler.body)
                    if found:
                        return found
                return body, idx
        return None

    found = find(tree.body)
    if found is None:
        return None
    body, idx = found
    tied = {n.id for n in ast.walk(body[idx]) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Store)}
    last = idx
    for pos, stmt in enumerate(body[idx + 1:], start=idx + 1):
        # only the check itself: prints/assignments/ifs about the versions, never the
        # definitions after it (pdf_export mentions Notebook_version too)
        if not isinstance(stmt, (ast.Expr, ast.Assign, ast.AugAssign, ast.If, ast.Pass)):
            break
        names = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
        if not (names & tied or any(_VERSION_NAME_RE.search(n) for n in names)):
            break
        tied |= {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)
                 and isinstance(n.ctx, ast.Store)}
        last = pos
    start = body[idx].lineno - 1 + offset
    end = (body[last].end_lineno or body[last].lineno) - 1 + offset
    return start, end


_TOP_START_RE = re.compile(r"[^\s#)\]}]")
_TOP_DEF_RE = re.compile(r"(?:def|class|async[ \t]+def)\b|@")


def _parse_ast(text: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():  # notebooks hold invalid escapes like '\/'
            warnings.simplefilter("ignore")
            return ast.parse(text)
    except SyntaxError:
        return None


def _parse_around(lines: list[str], line: int) -> tuple[ast.Module, int] | None:
    """The AST of the top-level code around ``line`` and its line offset, else of the cell.

    Parsing a whole 1000-line cell is the slowest step of a conversion, so first try the
    window from the top-level statement holding ``line`` to the next top-level def/class.
    """
    masked = _mask_magics(lines)
    start = next((i for i in range(line, -1, -1) if _TOP_START_RE.match(masked[i])), None)
    if start is not None:
        end = next((i for i in range(line + 1, len(masked)) if _TOP_DEF_RE.match(masked[i])),
                   len(masked))
        tree = _parse_ast("\n".join(masked[start:end]))
        if tree is not None:
            return tree, start
    tree = _parse_ast("\n".join(masked))
    return (tree, 0) if tree is not None else None


def _version_check_span_by_indent(lines: list[str], first: int) -> tuple[int, int]:
    def indent_of(line: str) -> int:
        return len(line) - len(line.lstrip())

    base = indent_of(lines[first])
    end = first
    for j in range(first + 1, len(lines)):
        line = lines[j]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if indent_of(line) > base or line.lstrip().startswith((")", "]", "}")):
            end = j
        elif _VERSION_NAME_RE.search(line) or re.match(r"\s*(else|elif)\b", line):
            end = j
        else:
            break
    return first, end


def _offline_safe_version_check(src: str, changes: _Changes) -> str:
    if "Latest_" not in src:
        return src
    lines = src.split("\n")
    span = _version_check_span(lines)
    if span is None:
        return src
    start, end = span
    first = lines[start]
    ind = first[: len(first) - len(first.lstrip())]
    body = []
    for line in lines[start:end + 1]:
        if not line.strip():
            body.append("")
        elif line.startswith(ind):
            body.append(ind + "    " + line[len(ind):])
        else:
            body.append("    " + line)
    wrapped = [
        f"{ind}# [hpc-dl4mic] offline-safe version check: {VERSION_CHECK_TIMEOUT} s timeout, "
        "skipped when HPC_DL4MIC_OFFLINE is set",
        f"{ind}import socket as _hpc_socket",
        f"{ind}_hpc_socket_timeout = _hpc_socket.getdefaulttimeout()",
        f"{ind}try:",
        f"{ind}    _hpc_socket.setdefaulttimeout({VERSION_CHECK_TIMEOUT})",
        f"{ind}    if __import__('os').environ.get('HPC_DL4MIC_OFFLINE'):",
        f"{ind}        raise OSError('HPC_DL4MIC_OFFLINE is set')",
        *body,
        f"{ind}except Exception as _hpc_err:",
        f"{ind}    print('hpc-dl4mic: version check skipped:', _hpc_err)",
        f"{ind}finally:",
        f"{ind}    _hpc_socket.setdefaulttimeout(_hpc_socket_timeout)",
    ]
    changes.version_checks += 1
    return "\n".join(lines[:start] + wrapped + lines[end + 1:])


def default_path(name: str, value: str, data_dir: str, results_dir: str) -> str:
    """The container path for a Colab ``/content…`` default (see the module docstring)."""
    base = results_dir if _RESULTS_NAME_RE.search(name) else data_dir
    rest = value[len("/content"):].strip("/")
    parts = [p for p in rest.split("/") if p]
    colab_roots = {"gdrive", "drive", "MyDrive", "My Drive", "sample_data"}
    if not parts or all(p in colab_roots for p in parts):
        return base
    return posixpath.join(base, parts[-1])


def _path_defaults(src: str, data_dir: str, results_dir: str, changes: _Changes) -> str:
    if "/content" not in src:
        return src
    lines = src.split("\n")
    for i, line in enumerate(lines):
        spec = parse_param_line(line) if "/content" in line else None
        if spec is None or spec.type not in ("string", "dropdown") or spec.choices:
            continue
        if not (isinstance(spec.default, str) and
                (spec.default == "/content" or spec.default.startswith("/content/"))):
            continue
        m = PARAM_RE.match(line)
        assert m is not None
        new = default_path(spec.name, spec.default, data_dir, results_dir)
        lines[i] = line[: m.start("value")] + repr(new) + " " + line[m.end("value"):].lstrip()
        changes.path_defaults.append(spec.name)
    return "\n".join(lines)


@functools.lru_cache(maxsize=1024)
def _common_rewrite(src: str, data_dir: str, results_dir: str,
                    keep_local_installs: bool) -> tuple[str, tuple]:
    """The mode-independent rewrites of one code cell (cached: both modes share them)."""
    changes = _Changes()
    src = _strip_lines(src, changes, keep_local_installs)
    src = _redirect_writes(src, results_dir, changes)
    src = _offline_safe_version_check(src, changes)
    src = _path_defaults(src, data_dir, results_dir, changes)
    return src, changes.frozen()


# ------------------------------------------------------------------------------ generated cells


def _code_cell(source: str, *, cid: str, tags: Sequence[str] = (), minor: int = 0,
               meta: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"tags": list(tags)} if tags else {}
    if meta:
        metadata["hpc_dl4mic"] = meta
    cell: dict[str, Any] = {"cell_type": "code", "execution_count": None,
                            "metadata": metadata, "outputs": [], "source": source}
    if minor >= 5:
        cell["id"] = cid
    return cell


_COMMON_SETUP = '''\
HPC_DL4MIC_DATA_DIR = {data_dir!r}
HPC_DL4MIC_RESULTS_DIR = {results_dir!r}
try:
    _hpc_os.makedirs(HPC_DL4MIC_RESULTS_DIR, exist_ok=True)
except OSError:
    pass
if not _hpc_os.access(_hpc_os.getcwd(), _hpc_os.W_OK) \\
        and _hpc_os.path.isdir(HPC_DL4MIC_RESULTS_DIR):
    _hpc_os.chdir(HPC_DL4MIC_RESULTS_DIR)  # opened inside the read-only image: write to results
'''

_BATCH_SETUP = '''\
# hpc-dl4mic: batch set-up (generated). Runs after the parameters papermill injected; works
# out which parameters were given. Each former #@param line keeps a given value and
# otherwise sets its own default, as in Colab.
import os as _hpc_os

{common}
_HPC_DEFAULTS = {defaults}
_HPC_RAW = {raw}


def _hpc_assigned_after_parameters():
    """Names assigned by the cells run between the parameters cell and this one."""
    import ast
    history = globals().get("In") or []
    names = set()
    for source in reversed(list(history)[:-1]):
        if source.lstrip().startswith("# hpc-dl4mic: " + "parameters cell"):
            return names
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        names.update(n.id for n in ast.walk(tree)
                     if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return set()  # parameters cell not in the history: only compare with the defaults


def _hpc_differs(value, default):
    try:
        return bool(value != default) or type(value) is not type(default)
    except Exception:
        return True


_hpc_given = _hpc_assigned_after_parameters()
__hpc_dl4mic_injected__ = {{
    name: globals()[name] for name in _HPC_DEFAULTS
    if name in globals()
    and (name in _hpc_given or _hpc_differs(globals()[name], _HPC_DEFAULTS[name]))
}}


def _hpc_param(name):
    """The value given for a parameter; a raw field's text is evaluated here, as Colab does."""
    value = __hpc_dl4mic_injected__[name]
    if name in _HPC_RAW and isinstance(value, str):
        value = eval(value, globals())
    elif isinstance(_HPC_DEFAULTS.get(name), tuple) and isinstance(value, list):
        value = tuple(value)  # papermill has no tuple literal: a tuple default comes as a list
    return value


print("hpc-dl4mic: parameters given:", ", ".join(sorted(__hpc_dl4mic_injected__)) or "none")
'''

_INTERACTIVE_SETUP = '''\
# hpc-dl4mic: form helpers (generated; run this cell first). A form cell shows the fields of
# the code cell after it as widgets: edit them, then run that code cell. Values are saved to
# HPC_DL4MIC_VALUES_FILE whenever a code cell reads them and restored when widgets are made.
import datetime as _hpc_datetime
import json as _hpc_json
import os as _hpc_os

{common}
HPC_DL4MIC_VALUES_FILE = _hpc_os.path.join(HPC_DL4MIC_RESULTS_DIR, {values_file!r})
HPC_DL4MIC_FORMS = {forms}

try:
    import ipywidgets as _hpc_widgets
    from IPython.display import display as _hpc_display
except ImportError:  # no ipywidgets: the saved or default values are used
    _hpc_widgets = None
_hpc_made = {{}}  # form key -> {{name: widget}}


def _hpc_load():
    try:
        with open(HPC_DL4MIC_VALUES_FILE) as f:
            data = _hpc_json.load(f)
        return data if isinstance(data, dict) else {{}}
    except (OSError, ValueError):
        return {{}}


def _hpc_spec(form, name):
    for spec in HPC_DL4MIC_FORMS[form]:
        if spec["name"] == name:
            return spec
    raise KeyError(f"no field {{name!r}} in form {{form!r}}")


def _hpc_is_text(spec):
    return spec["type"] == "raw" or isinstance(spec["default"], (tuple, list))


def _hpc_widget(spec, value):
    w, t = _hpc_widgets, spec["type"]
    common = dict(description=spec["name"], style={{"description_width": "initial"}})
    wide = dict(layout=w.Layout(width="90%"))
    if spec["choices"] is not None:
        options = [str(c) for c in spec["choices"]] if t == "raw" else list(spec["choices"])
        if spec["allow_input"]:
            return w.Combobox(options=[str(o) for o in options], value=str(value), **common, **wide)
        return w.Dropdown(options=options, value=value, **common)
    if _hpc_is_text(spec):
        return w.Text(value=value if isinstance(value, str) else repr(value), **common, **wide)
    if t == "boolean":
        return w.Checkbox(value=bool(value), indent=False, **common)
    if t == "integer":
        return w.IntText(value=value, **common)
    if t == "number":
        return w.FloatText(value=value, **common)
    if t == "slider":
        bounds = dict(min=spec["min"], max=spec["max"], step=spec["step"] or 1)
        bounds = {{k: v for k, v in bounds.items() if v is not None}}
        floating = any(isinstance(v, float) for v in (*bounds.values(), value))
        cls = w.FloatSlider if floating else w.IntSlider
        return cls(value=value, **bounds, **common)
    if t == "date":
        day = _hpc_datetime.date.fromisoformat(value) if value else None
        return w.DatePicker(value=day, **common)
    return w.Text(value=str(value), **common, **wide)


def hpc_form(form):
    """Show the fields of one form as widgets (made once, from the saved or default values)."""
    saved = _hpc_load().get(form, {{}})
    if _hpc_widgets is None:
        print("ipywidgets is not installed; using these values (edit", HPC_DL4MIC_VALUES_FILE, "):")
        for spec in HPC_DL4MIC_FORMS[form]:
            print(f"  {{spec['name']}} = {{saved.get(spec['name'], spec['default'])!r}}")
        return
    if form not in _hpc_made:
        made = {{}}
        for spec in HPC_DL4MIC_FORMS[form]:
            try:
                made[spec["name"]] = _hpc_widget(spec, saved.get(spec["name"], spec["default"]))
            except Exception:  # a saved value that no longer fits: start from the default
                made[spec["name"]] = _hpc_widget(spec, spec["default"])
        _hpc_made[form] = made
    _hpc_display(_hpc_widgets.VBox(list(_hpc_made[form].values())))


def hpc_value(form, name):
    """The current value of one field (widget, else saved, else default); saves the values."""
    spec = _hpc_spec(form, name)
    data = _hpc_load()
    widget = _hpc_made.get(form, {{}}).get(name)
    if widget is not None:
        value = widget.value
        if isinstance(value, _hpc_datetime.date):
            value = value.isoformat()
        elif spec["type"] == "number" and isinstance(spec["default"], int) \\
                and isinstance(value, float) and value.is_integer():
            value = int(value)
        if data.get(form, {{}}).get(name, spec["default"]) != value:
            data.setdefault(form, {{}})[name] = value
            try:
                with open(HPC_DL4MIC_VALUES_FILE, "w") as f:
                    _hpc_json.dump(data, f, indent=1, sort_keys=True)
            except OSError as err:
                print("hpc-dl4mic: could not save widget values:", err)
    else:
        value = data.get(form, {{}}).get(name, spec["default"])
    if _hpc_is_text(spec) and isinstance(value, str):
        value = eval(value, globals())  # raw fields hold Python expression text, as in Colab
    return value
'''


def _py(value: Any) -> str:
    """A Python literal for a value (repr, which round-trips for the literal types we hold)."""
    return repr(value)


def _batch_default(spec: ParamSpec) -> Any:
    if spec.type == "raw":
        value = _literal_or_none(spec.default)
        return value if value is not None and not isinstance(value, str) else spec.default
    return spec.default


def _literal_or_none(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _section_titles(cells: list[Any]) -> dict[str, str]:
    return {s.token: s.title for s in section_headings({"cells": cells})}


def _parameters_source(specs: Sequence[ParamSpec], titles: dict[str, str]) -> str:
    lines = [
        PARAMETERS_MARK + " (generated)",
        "# Every #@param field of the notebook with its default; papermill injects given values",
        "# after this cell. A value given for a name applies to every field of that name.",
    ]
    section = None
    for spec in specs:
        if spec.section != section:
            section = spec.section
            title = titles.get(section, "")
            lines.append(f"# --- {section} {title}".rstrip() if section else "# ---")
        hint = "raw (Python expression, text is evaluated)" if spec.type == "raw" else spec.type
        if spec.choices is not None:
            hint += ": one of " + ", ".join(str(c) for c in spec.choices)
            hint += " or your own" if spec.allow_input else ""
        elif spec.type == "slider":
            hint += f": {spec.minimum}..{spec.maximum} step {spec.step}"
        lines.append(f"{spec.name} = {_py(_batch_default(spec))}  # {hint}")
    return "\n".join(lines)


def _rewrite_param_lines(src: str, replace_line) -> str:
    lines = src.split("\n")
    for i, line in enumerate(lines):
        if "@param" not in line or parse_param_line(line) is None:
            continue
        m = PARAM_RE.match(line)
        assert m is not None
        spec_text = m.group("spec").strip()
        lines[i] = replace_line(m, spec_text)
    return "\n".join(lines)


def _form_keys(specs: Sequence[ParamSpec]) -> dict[int, str]:
    """Cell index → form key (section token; '#2', '#3' for further forms of a section)."""
    keys: dict[int, str] = {}
    per_section: dict[str, int] = {}
    for spec in specs:
        if spec.cell_index in keys:
            continue
        base = spec.section or "form"
        per_section[base] = per_section.get(base, 0) + 1
        n = per_section[base]
        keys[spec.cell_index] = base if n == 1 else f"{base}#{n}"
    return keys


def _forms_literal(specs: Sequence[ParamSpec], keys: dict[int, str]) -> str:
    forms: dict[str, list[str]] = {}
    for spec in specs:
        entry = {
            "name": spec.name, "type": spec.type, "default": spec.default,
            "choices": list(spec.choices) if spec.choices is not None else None,
            "min": spec.minimum, "max": spec.maximum, "step": spec.step,
            "allow_input": spec.allow_input,
        }
        forms.setdefault(keys[spec.cell_index], []).append("        " + repr(entry) + ",")
    if not forms:
        return "{}"
    out = ["{"]
    for key, entries in forms.items():
        out.append(f"    {key!r}: [")
        out.extend(entries)
        out.append("    ],")
    out.append("}")
    return "\n".join(out)


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

    changes = _Changes()
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        src, delta = _common_rewrite(_src(cell), data_dir, results_dir, keep_local_installs)
        cell["source"] = src
        changes.add(delta)

    specs = extract_params({"cells": cells})
    if mode == "batch":
        cells = _to_batch(cells, specs, minor, data_dir, results_dir)
    else:
        cells = _to_interactive(cells, specs, minor, data_dir, results_dir)

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
        "parameters": [spec_to_dict(s) for s in specs],
    }
    out.cells = cells
    return nbformat.from_dict(out)


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


def _to_batch(cells: list[Any], specs: list[ParamSpec], minor: int, data_dir: str,
              results_dir: str) -> list[Any]:
    from .params import unique_by_name

    first = unique_by_name(specs)
    defaults = "{\n" + "".join(f"    {s.name!r}: {_py(_batch_default(s))},\n" for s in first) + "}"
    raw = sorted({s.name for s in specs if s.type == "raw"})
    raw_literal = "{" + ", ".join(repr(n) for n in raw) + "}" if raw else "set()"
    setup = _BATCH_SETUP.format(
        common=_COMMON_SETUP.format(data_dir=data_dir, results_dir=results_dir).rstrip(),
        defaults=defaults, raw=raw_literal)

    def line(m: re.Match, spec_text: str) -> str:
        name, value = m.group("name"), m.group("value")
        return (f"{m.group('indent')}{name} = _hpc_param({name!r}) if {name!r} in "
                f"__hpc_dl4mic_injected__ else {value}  # form field: {spec_text}")

    with_params = {s.cell_index for s in specs}
    for ci in with_params:
        cells[ci]["source"] = _rewrite_param_lines(cells[ci]["source"], line)
    params_cell = _code_cell(_parameters_source(first, _section_titles(cells)),
                             cid="hpc-dl4mic-parameters", tags=["parameters"], minor=minor,
                             meta={"generated": "parameters"})
    setup_cell = _code_cell(setup, cid="hpc-dl4mic-setup", tags=["hpc-dl4mic-setup"],
                            minor=minor, meta={"generated": "setup"})
    return [params_cell, setup_cell, *cells]


def _to_interactive(cells: list[Any], specs: list[ParamSpec], minor: int, data_dir: str,
                    results_dir: str) -> list[Any]:
    keys = _form_keys(specs)
    setup = _INTERACTIVE_SETUP.format(
        common=_COMMON_SETUP.format(data_dir=data_dir, results_dir=results_dir).rstrip(),
        values_file=VALUES_FILE, forms=_forms_literal(specs, keys))
    out: list[Any] = [_code_cell(setup, cid="hpc-dl4mic-setup", tags=["hpc-dl4mic-setup"],
                                 minor=minor, meta={"generated": "setup"})]
    for ci, cell in enumerate(cells):
        key = keys.get(ci)
        if key is not None:
            form_src = (f"# hpc-dl4mic form: edit the fields, then run the next cell "
                        f"(values are kept in {posixpath.join(results_dir, VALUES_FILE)})\n"
                        f"hpc_form({key!r})")
            slug = re.sub(r"[^a-zA-Z0-9-]", "-", key)
            out.append(_code_cell(form_src, cid=f"hpc-dl4mic-form-{slug}",
                                  tags=["hpc-dl4mic-form"], minor=minor,
                                  meta={"generated": "form", "form": key}))

            def line(m: re.Match, spec_text: str, key: str = key) -> str:
                name = m.group("name")
                return (f"{m.group('indent')}{name} = hpc_value({key!r}, {name!r})"
                        f"  # form field: {spec_text} (default: {m.group('value')})")

            cell["source"] = _rewrite_param_lines(cell["source"], line)
        out.append(cell)
    return out


# ------------------------------------------------------------------------------ writing


def write_notebook(nb: Any, path: Path) -> None:
    """Validate ``nb`` (nbformat v4) and write it atomically (temp file + rename), creating
    missing parent folders."""
    import tempfile

    import nbformat

    path = Path(path)
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise NotebookError(
            f"{path}: converted notebook is not valid nbformat v4 ({first})") from None
    text = _dumps(nb)
    directory = path.parent if str(path.parent) else Path(".")
    tmp_name = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=directory,
                                         prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False) as tmp:
            tmp_name = tmp.name
            tmp.write(text)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise NotebookError(f"{path}: cannot write notebook ({exc.strerror or exc})") from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


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


def notebook_text(nb: Any, where: str = "converted notebook") -> str:
    """``nb`` validated (nbformat v4) and serialised exactly as :func:`write_notebook` does."""
    import nbformat

    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise NotebookError(f"{where}: not valid nbformat v4 ({first})") from None
    return _dumps(nb)
