"""The offline-safe version check: ZeroCostDL4Mic's fetch of the latest notebook versions,
found with :mod:`ast` and wrapped in ``try/except`` with a socket timeout, skipped at once
when ``HPC_DL4MIC_OFFLINE`` is set (see :mod:`.convert`)."""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Sequence

VERSION_CHECK_TIMEOUT = 5

_VERSION_URL_RE = re.compile(
    r"https?://raw\.githubusercontent\.com/\S*?Latest_(?:Notebook_versions|ZeroCostDL4Mic_Release)\.csv"
)
_VERSION_NAME_RE = re.compile(r"(?i)notebook_version")
_MAGIC_RE = re.compile(r"^([ \t]*)(?:[!%]|[A-Za-z_][\w, ]*=[ \t]*[!%])")


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


def offline_safe_version_check(src: str) -> tuple[str, int]:
    """``src`` with its version check wrapped, and the number of checks wrapped (0 or 1)."""
    if "Latest_" not in src:
        return src, 0
    lines = src.split("\n")
    span = _version_check_span(lines)
    if span is None:
        return src, 0
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
    return "\n".join(lines[:start] + wrapped + lines[end + 1:]), 1

