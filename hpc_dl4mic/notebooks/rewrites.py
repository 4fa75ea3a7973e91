"""The mode-independent rewrites of Colab code cells: installs and google.colab lines
stripped, writes toward the filesystem root redirected, ``/content`` path defaults moved to
the data and results dirs, the version check made offline-safe (see :mod:`.convert`)."""

from __future__ import annotations

import functools
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from .params import PARAM_RE, parse_param_line
from .versioncheck import offline_safe_version_check

REMOVED = "# [hpc-dl4mic] removed:"

_INSTALL_RE = re.compile(
    r"^(?P<indent>[ \t]*)[!%][ \t]*(?:sudo[ \t]+)?"
    r"(?:pip3?|conda|mamba|micromamba|python[\d.]*[ \t]+-m[ \t]+pip)[ \t]+"
    r"(?:install|uninstall)\b(?P<args>.*)$"
)
# `!python setup.py install` (or another script's `install`/`develop`): an install into the
# image, like pip's
_SCRIPT_INSTALL_RE = re.compile(
    r"^(?P<indent>[ \t]*)[!%][ \t]*(?:sudo[ \t]+)?python[\d.]*[ \t]+[\w./-]*\.py[ \t]+"
    r"(?:install|develop)\b(?P<args>.*)$")
# a `git clone` that does not run (commented out), and the folder it would make
_DEAD_CLONE_RE = re.compile(
    r"^[ \t]*#+[ \t]*!?[ \t]*git[ \t]+clone[ \t]+\S*?/(?P<name>[\w.-]+?)(?:\.git)?/?[ \t]*$",
    re.M)
_CHDIR_RE = re.compile(r"^(?P<indent>[ \t]*)os\.chdir\((?P<arg>.*)\)[ \t]*$")
_LOCAL_INSTALL_RE = re.compile(
    r"(?:^|\s)(?:-r|--requirement|-e|--editable|\.{1,2}/?|/\S+|\./\S+)(?=\s|$)")
_COLAB_IMPORT_RE = re.compile(
    r"^[ \t]*(?:from[ \t]+google\.colab[\w.]*[ \t]+import\b|import[ \t]+google\.colab\b)")
_COLAB_CALL_RE = re.compile(
    r"^[ \t]*(?:drive\.(?:mount|flush_and_unmount)|files\.(?:download|upload))[ \t]*\("
)
_TF_VERSION_RE = re.compile(r"^[ \t]*%tensorflow_version\b")
_COLAB_MODULES_RE = re.compile(r"""(['"])google\.colab\1[ \t]+(not[ \t]+in|in)[ \t]+sys\.modules""")
_ROOT_REQUIREMENTS_RE = re.compile(
    r"""(['"])\.\./\1[ \t]*\*[ \t]*\(?[ \t]*\w+[ \t]*\)?[ \t]*\+[ \t]*(['"])requirements\.txt\2"""
)
_FREEZE_RE = re.compile(
    r"^(?P<indent>[ \t]*)!(?P<cmd>[ \t]*pip3?[ \t]+freeze)[ \t]*>[ \t]*(?P<target>\S+)[ \t]*$")
_RESULTS_NAME_RE = re.compile(r"(?i)output|result|save|saving|model|export|predict")


@dataclass
class Changes:
    """Counts of the rewrites made, for the provenance metadata."""

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


def _strip_lines(src: str, changes: Changes, keep_local_installs: bool) -> str:
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
        elif _SCRIPT_INSTALL_RE.match(line) and not keep_local_installs:
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


def _redirect_writes(src: str, results_dir: str, changes: Changes) -> str:
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


def default_path(name: str, value: str, data_dir: str, results_dir: str) -> str:
    """The container path for a Colab ``/content…`` default (see :mod:`.convert`)."""
    base = results_dir if _RESULTS_NAME_RE.search(name) else data_dir
    rest = value[len("/content"):].strip("/")
    parts = [p for p in rest.split("/") if p]
    colab_roots = {"gdrive", "drive", "MyDrive", "My Drive", "sample_data"}
    if not parts or all(p in colab_roots for p in parts):
        return base
    return posixpath.join(base, parts[-1])


def _path_defaults(src: str, data_dir: str, results_dir: str, changes: Changes) -> str:
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


_BASE_PATH_CHECK_RE = re.compile(
    r"^(?P<indent>[ \t]+)if[ \t]+base_path[ \t]+not[ \t]+in[ \t]+(?P<path>[A-Za-z_]\w*)[ \t]*:")
KEEP_ABSOLUTE = "# [hpc-dl4mic] absolute paths (/data, /results) are kept as given"


def _keep_absolute_paths(src: str) -> str:
    """The notebooks' path helpers (StarDist 2D's ``check_base_path``) prefix the working
    directory to any path not under it, so ``/data/x`` became ``/results/data/x``: a helper
    whose body starts with ``if base_path not in PATH:`` returns an absolute PATH as it is."""
    if "base_path" not in src:
        return src
    lines = src.split("\n")
    out: list[str] = []
    for line in lines:
        m = _BASE_PATH_CHECK_RE.match(line)
        previous = next((p for p in reversed(out) if p.strip()), "")
        if m and previous.lstrip().startswith("def ") and previous.rstrip().endswith(":"):
            path, indent = m.group("path"), m.group("indent")
            out.append(f"{indent}if __import__('os').path.isabs({path}):  {KEEP_ABSOLUTE}")
            out.append(f"{indent}    return {path}")
        out.append(line)
    return "\n".join(out)


def _skip_dead_clone_chdirs(src: str, changes: Changes) -> str:
    """``os.chdir(… + "/NAME")`` into the folder of a ``git clone …/NAME`` that the same cell
    has commented out (SplineDist 2D: its package comes from the requirements file now, the
    clone is gone, and the chdir would fail): the chdir becomes a removed-line comment."""
    names = {m.group("name") for m in _DEAD_CLONE_RE.finditer(src)} if "clone" in src else ()
    if not names:
        return src
    out = []
    for line in src.split("\n"):
        m = _CHDIR_RE.match(line)
        arg = m.group("arg").strip() if m else ""
        if m and any(re.search(rf"""['"]/?{re.escape(n)}/?['"]$""", arg) for n in names):
            changes.colab_lines += 1
            line = _removed_line(m.group("indent"), f"{line.strip()} (a commented-out git clone's "
                                 "folder)")
        out.append(line)
    return "\n".join(out)


@functools.lru_cache(maxsize=1024)
def common_rewrite(src: str, data_dir: str, results_dir: str,
                   keep_local_installs: bool) -> tuple[str, tuple]:
    """The mode-independent rewrites of one code cell (cached: both modes share them)."""
    changes = Changes()
    src = _strip_lines(src, changes, keep_local_installs)
    src = _skip_dead_clone_chdirs(src, changes)
    src = _redirect_writes(src, results_dir, changes)
    src, checks = offline_safe_version_check(src)
    changes.version_checks += checks
    src = _path_defaults(src, data_dir, results_dir, changes)
    src = _keep_absolute_paths(src)
    return src, changes.frozen()


