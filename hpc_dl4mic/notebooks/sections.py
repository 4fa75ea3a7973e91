"""Numbered sections of a ZeroCostDL4Mic notebook: find, remove and renumber them.

A section is a numbered markdown heading (``# **3. Train**``); its token is the dotted number
ending in a dot (``3.``, ``6.1.``)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import NotebookError

_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})[ \t]*(.*?)[ \t#]*$")
_NUMBER_RE = re.compile(r"^(?P<pre>(?:\*\*|__|\*|_)?[ \t]*)(?P<num>\d+(?:\.\d+)*)(?P<dot>\.?)"
                        r"(?=[\s*_)\-:,]|$)")
_TOKEN_RE = re.compile(r"^\d+(\.\d+)*\.$")


@dataclass(frozen=True)
class Section:
    """A numbered markdown heading: token ``"1.3."``, level 2, its title and cell index."""

    token: str
    level: int
    title: str
    cell_index: int
    heading_level: int = 1  # number of '#'
    line_index: int = 0
    number_text: str = ""  # as written: "6.1" or "6.1."


def _src(cell: Any) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src



def _headings(cell: Any) -> tuple[tuple[int, int, str, re.Match | None], ...]:
    """(line index, markdown level, text, number match or None) of each heading line of a cell."""
    if cell.get("cell_type") != "markdown":
        return ()
    return _source_headings(_src(cell))


@functools.lru_cache(maxsize=4096)
def _source_headings(src: str) -> tuple[tuple[int, int, str, re.Match | None], ...]:
    if "#" not in src:
        return ()
    out = []
    for li, line in enumerate(src.splitlines()):
        m = _HEADING_RE.match(line)
        if m is None:
            continue
        text = m.group(2)
        out.append((li, len(m.group(1)), text, _NUMBER_RE.match(text)))
    return tuple(out)


def _title(text: str, number: re.Match) -> str:
    rest = text[number.end():]
    return rest.strip().strip("*_").strip().lstrip("-:)").strip().strip("*_").strip()


def section_headings(nb: Any) -> list[Section]:
    """Every numbered markdown heading, in document order."""
    sections = []
    for ci, cell in enumerate(nb["cells"]):
        for li, level, text, number in _headings(cell):
            if number is None:
                continue
            num = number.group("num")
            sections.append(Section(token=num + ".", level=num.count(".") + 1,
                                    title=_title(text, number), cell_index=ci,
                                    heading_level=level, line_index=li,
                                    number_text=num + number.group("dot")))
    return sections


def section_of_cells(nb: Any) -> list[str]:
    """For each cell, the token of the numbered section it belongs to ('' before the first)."""
    tokens: list[str] = []
    current = ""
    by_cell: dict[int, str] = {}
    for s in section_headings(nb):
        by_cell[s.cell_index] = s.token  # the last heading of a cell wins
    for ci in range(len(nb["cells"])):
        current = by_cell.get(ci, current)
        tokens.append(current)
    return tokens


def normalize_sections(sections: str | Iterable[str] | None) -> list[str]:
    """Tokens from a config's ``sections_to_remove`` (str, list or None): ``"2"`` → ``"2."``."""
    if sections is None:
        return []
    items = sections.split() if isinstance(sections, str) else [str(s) for s in sections]
    out: list[str] = []
    for item in items:
        for part in str(item).split():
            token = part.strip()
            if not token.endswith("."):
                token += "."
            if not _TOKEN_RE.match(token):
                raise NotebookError(
                    f"section {part!r} is not a section number like '2.' or '1.3.'")
            if token not in out:
                out.append(token)
    return out


def _removed_cells(cells: list[Any], tokens: Sequence[str], name: str) -> set[int]:
    heads = [_headings(c) for c in cells]
    sections = section_headings({"cells": cells})
    existing = list(dict.fromkeys(s.token for s in sections))
    missing = [t for t in tokens if t not in existing]
    if missing:
        what = "sections" if len(missing) > 1 else "section"
        have = " ".join(existing) if existing else "(none)"
        raise NotebookError(
            f"{name or 'notebook'} has no {what} {' '.join(missing)} to remove; "
            f"its sections are: {have}")
    drop: set[int] = set()
    for token in tokens:
        for s in sections:
            if s.token != token:
                continue
            end = len(cells)
            for cj in range(s.cell_index + 1, len(cells)):
                if _ends_section(heads[cj], s):
                    end = cj
                    break
            drop.update(range(s.cell_index, end))
    return drop


def _ends_section(heads: Sequence[tuple[int, int, str, re.Match | None]],
                  s: Section) -> bool:
    for i, (_li, level, _text, number) in enumerate(heads):
        if number is not None:
            if number.group("num").count(".") + 1 <= s.level:
                return True
        elif i == 0 and level <= s.heading_level:
            return True
    return False


def _renumber_map(sections: Sequence[Section], removed: Sequence[str]) -> dict[str, str]:
    """Old token → new token for the remaining headings (later siblings move up)."""
    removed_parts = [tuple(int(x) for x in t[:-1].split(".")) for t in removed]
    mapping: dict[str, str] = {}
    for s in sections:
        parts = tuple(int(x) for x in s.token[:-1].split("."))
        new = []
        for depth, number in enumerate(parts):
            parent = parts[:depth]
            shift = sum(1 for r in removed_parts
                        if len(r) == depth + 1 and r[:depth] == parent and r[depth] < number)
            new.append(number - shift)
        mapping[s.token] = ".".join(str(n) for n in new) + "."
    return mapping


def _renumber(cells: list[Any], removed: Sequence[str]) -> None:
    sections = section_headings({"cells": cells})
    mapping = _renumber_map(sections, removed)
    by_cell: dict[int, list[Section]] = {}
    for s in sections:
        by_cell.setdefault(s.cell_index, []).append(s)
    for ci, secs in by_cell.items():
        lines = _src(cells[ci]).splitlines(keepends=True)
        for s in secs:
            new_num = mapping[s.token][:-1] + ("." if s.number_text.endswith(".") else "")
            if new_num == s.number_text:
                continue
            line = lines[s.line_index]
            m = _HEADING_RE.match(line.rstrip("\r\n"))
            assert m is not None
            start = m.start(2) + _NUMBER_RE.match(m.group(2)).start("num")
            lines[s.line_index] = line[:start] + new_num + line[start + len(s.number_text):]
        cells[ci]["source"] = "".join(lines)
