"""Code cells that fetch from the internet: found, reported, and guarded for offline nodes.

Compute nodes usually have no internet. A notebook line that downloads (``!wget URL``,
``!git clone``, ``wget.download(…)``, ``requests.get(…)``, ``urlretrieve``,
``pd.read_csv("https://…")``, csbdeep's ``download_and_extract_zip_file``, ``torch.hub``,
``pooch.retrieve``, bioimageio's ``download(…)`` …) is an :class:`InternetUse`. The
notebook's version check is not one: :mod:`.versioncheck` already makes it offline-safe.

Conversion guards them (both modes): before each such statement a call
``hpc_dl4mic_needs_internet(SECTION, TITLE, WHAT)`` raises ``NeedsInternet`` with a one-line
reason when ``HPC_DL4MIC_OFFLINE`` is set (the job scripts set it unless the profile says
``node_internet: true``), instead of a long DNS timeout and a traceback far from the cause.
The call only runs where the download would have run (inside the same branch or function).

A section whose title says it downloads a test/example data set (``3.1. Download a test
dataset``) is not needed by a run that brings its own data: in batch mode its code cells run
only when the node is online; offline they print one line and are recorded as skipped
(``skipped.jsonl`` in the results dir, which the batch task's status reports).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .sections import _src, section_headings, section_of_cells

_SHELL_RE = re.compile(r"^\s*(?:[A-Za-z_][\w, ]*=\s*)?!")
_SHELL_NET_RE = re.compile(
    r"(?:^|[\s;&|(])(?P<what>(?:wget|curl|aria2c)\b[^;&|]*|git\s+(?:clone|pull|fetch)\b[^;&|]*"
    r"|gdown\b[^;&|]*)")
_PY_NET_RE = re.compile(
    r"(?<![\w.])(?P<what>(?:wget\.download|requests\.(?:get|post|head|request)"
    r"|urllib\.request\.(?:urlopen|urlretrieve)|(?<!\.)urlretrieve|(?<!\.)urlopen"
    r"|download_and_extract_zip_file|(?:tf\.keras\.utils\.|keras\.utils\.)?get_file"
    r"|torch\.hub\.\w+|hf_hub_download|gdown\.download|download_example_dataset"
    r"|pooch\.retrieve"
    r"|(?<!\.)download)\s*\(|(?:pd|pandas)\.read_\w+\(\s*[rbuf]?[\"']https?://)")
_INSTALL_RE = re.compile(r"^\s*[!%]\s*(?:sudo\s+)?(?:pip3?|conda|mamba|python[\d.]*\s+-m\s+pip)\s")
_DATASET_TITLE_RE = re.compile(
    r"(?i)\bdownload\w*\b.*\b(?:test|default|example|demo|sample|training)\b.*\bdata(?:\s?set)?s?\b")
# statements a guard line cannot precede without changing what runs
_HEADER_RE = re.compile(r"^\s*(?:if|elif|else|for|while|try|except|finally|lambda)\b")

GUARD = "hpc_dl4mic_needs_internet"
SKIP = "hpc_dl4mic_skip_offline"
SKIPPED_FILE = "skipped.jsonl"


@dataclass(frozen=True)
class InternetUse:
    """A line of a code cell that downloads: cell index, line index, section and what."""

    cell: int
    line: int
    section: str
    title: str
    what: str
    skippable: bool = False  # a test data set download: skipped offline in batch mode

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_download_title(title: str) -> bool:
    """Whether a section title says it downloads a test/example data set."""
    return bool(_DATASET_TITLE_RE.search(title))


def _ignored_lines(lines: list[str]) -> set[int]:
    """Lines that are not code that runs a download: the version check, install lines."""
    from .versioncheck import _version_check_span

    ignored = {i for i, ln in enumerate(lines) if _INSTALL_RE.match(ln)}
    if "Latest_" in "\n".join(lines):
        span = _version_check_span(lines)
        if span:
            ignored.update(range(span[0], span[1] + 1))
    return ignored


def _code_part(line: str) -> str:
    """``line`` without a trailing comment (a ``#`` outside quotes)."""
    out, quote = [], ""
    for ch in line:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out)


def line_uses(line: str) -> str | None:
    """What a line fetches (``git clone https://…``, ``requests.get(``), or None."""
    if not line.strip() or line.lstrip().startswith("#") or _INSTALL_RE.match(line):
        return None
    if _SHELL_RE.match(line):
        m = _SHELL_NET_RE.search(line.split("!", 1)[1])
        return m.group("what").strip()[:160] if m else None
    code = _code_part(line)
    if re.match(r"^\s*(?:def|class|import|from)\b", code) or code.lstrip().startswith("@"):
        return None
    return line.strip()[:160] if _PY_NET_RE.search(code) else None


def find_internet_uses(nb: Any) -> list[InternetUse]:
    """Every downloading line of ``nb``'s code cells, with its section."""
    sections = section_of_cells(nb)
    titles = {s.token: s.title for s in section_headings(nb)}
    uses = []
    for ci, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        lines = _src(cell).split("\n")
        ignored = _ignored_lines(lines)
        token = sections[ci]
        title = titles.get(token, "")
        for li, line in enumerate(lines):
            if li in ignored:
                continue
            what = line_uses(line)
            if what:
                uses.append(InternetUse(ci, li, token, title, what,
                                        skippable=dataset_download_title(title)))
    return uses


def summarize(uses: Sequence[InternetUse]) -> list[dict[str, Any]]:
    """One entry per section: token, title, what it fetches (first few), skippable."""
    out: dict[str, dict[str, Any]] = {}
    for use in uses:
        entry = out.setdefault(use.section, {"section": use.section, "title": use.title,
                                             "fetches": [], "skippable": use.skippable})
        if use.what not in entry["fetches"] and len(entry["fetches"]) < 3:
            entry["fetches"].append(use.what)
    return list(out.values())


def _statement_lines(lines: list[str], targets: Sequence[int]) -> dict[int, tuple[int, int]]:
    """For each target line (0-based), the (first line, column) of the innermost statement
    holding it, where a line before that statement runs exactly when the statement does;
    targets in the header of an ``if``/``for``/``while``/``try`` are left out. Empty when the
    cell does not parse (then nothing is guarded)."""
    import ast

    from .versioncheck import _mask_magics, _parse_ast

    tree = _parse_ast("\n".join(_mask_magics(lines)))
    if tree is None:
        return {}
    found: dict[int, tuple[int, int]] = {}
    for target in targets:
        line_no = target + 1
        best = None
        for node in ast.walk(tree):
            if isinstance(node, ast.stmt) and node.lineno <= line_no <= (node.end_lineno or 0):
                if best is None or node.lineno >= best.lineno:
                    best = node
        if best is None:
            continue
        body = getattr(best, "body", None)
        in_header = isinstance(body, list) and body and line_no < body[0].lineno
        if in_header and not isinstance(best, (ast.With, ast.AsyncWith)):
            continue
        if lines[best.lineno - 1][:best.col_offset].strip():
            continue  # not the first statement of its line (``if x: download(…)``)
        found[target] = (best.lineno - 1, best.col_offset)
    return found


def guard_cell(src: str, section: str, title: str) -> tuple[str, int]:
    """``src`` with a ``hpc_dl4mic_needs_internet(…)`` line before each downloading
    statement, and how many were added. A download in the header of an ``if``/``for``/
    ``try``… (where a line before it would always run) and cells that do not parse are left
    alone."""
    lines = src.split("\n")
    ignored = _ignored_lines(lines)
    uses = {li: what for li, line in enumerate(lines)
            if li not in ignored and (what := line_uses(line))}
    if not uses:
        return src, 0
    where = _statement_lines(lines, sorted(uses))
    guards: dict[int, str] = {}
    for li, (first, col) in sorted(where.items()):
        if first in guards:
            continue
        indent = lines[first][:col]
        guards[first] = (f"{indent}{GUARD}({section!r}, {title!r}, {uses[li]!r})"
                         "  # [hpc-dl4mic] offline: a clear error")
    out = []
    for li, line in enumerate(lines):
        if li in guards:
            out.append(guards[li])
        out.append(line)
    return "\n".join(out), len(guards)


def skip_cell_offline(src: str, section: str, title: str, what: str) -> str | None:
    """The batch version of a test-data-set download cell: its code runs only online; None
    when it cannot be wrapped (a cell magic must stay the first line)."""
    if src.lstrip().startswith("%%") or re.search(r"#\s*@param", src):
        return None  # a form field must stay at the top level
    body = "\n".join(("    " + ln) if ln.strip() else "" for ln in src.split("\n"))
    return (f"# [hpc-dl4mic] section {section} downloads a test data set: skipped on offline "
            f"nodes (a batch run brings its own data)\n"
            f"if not {SKIP}({section!r}, {title!r}, {what!r}):\n"
            f"{body}\n    pass")


def guard_internet(cells: list[Any], *, batch: bool) -> list[dict[str, Any]]:
    """Guard every downloading statement of ``cells`` (in place); in batch mode wrap the
    cells of test-data-set download sections so that they run only online. Returns the
    summary for the notebook's metadata (per section: what it fetches and what happens
    offline)."""
    nb = {"cells": cells}
    uses = find_internet_uses(nb)
    by_cell: dict[int, list[InternetUse]] = {}
    for use in uses:
        by_cell.setdefault(use.cell, []).append(use)
    wrapped: set[str] = set()
    for ci, cell_uses in by_cell.items():
        first = cell_uses[0]
        src = _src(cells[ci])
        if batch and first.skippable:
            new = skip_cell_offline(src, first.section, first.title, first.what)
            if new is not None:
                cells[ci]["source"] = new
                wrapped.add(first.section)
                continue
        cells[ci]["source"], _ = guard_cell(src, first.section, first.title)
    summary = summarize(uses)
    for entry in summary:
        entry["offline"] = ("skipped" if entry.pop("skippable") and entry["section"] in wrapped
                            else "fails with a clear error")
    return summary


def report_lines(summary: Sequence[dict[str, Any]]) -> list[str]:
    """One line per section that downloads, saying what an offline node does with it."""
    lines = []
    for entry in summary:
        first = entry["fetches"][0]
        what = (first if len(first) <= 70 else first[:67] + "...") + (
            f" and {len(entry['fetches']) - 1} more" if len(entry["fetches"]) > 1 else "")
        head = f"section {entry['section'] or '(top)'} {entry['title']!r} downloads ({what})"
        if entry["offline"] == "skipped":
            lines.append(f"{head}: skipped on offline nodes in batch runs (a test data set)")
        else:
            lines.append(f"{head}: offline, the notebook stops there with NeedsInternet if it "
                         f"runs that code (leave it out: --skip-sections {entry['section']})")
    return lines
