"""Plain-text tables for the CLI: a header row, columns sized to their content."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

ELLIPSIS = "…"


def clip(text: str, width: int | None) -> str:
    """``text`` cut to ``width`` characters, the last one ``…`` when it was longer."""
    if width is None or len(text) <= width:
        return text
    return text[:max(width - 1, 0)] + ELLIPSIS


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *,
                 max_width: Mapping[str, int] | None = None,
                 right: Sequence[str] = ()) -> list[str]:
    """Lines of an aligned table: ``headers`` then ``rows``; cells longer than
    ``max_width[header]`` end in ``…``; ``right`` columns are right-aligned. The last
    column is not padded (no trailing spaces)."""
    limits = max_width or {}
    cells = [[clip(str(c), limits.get(h)) for h, c in zip(headers, row)] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *cells]:
        parts = [cell.rjust(w) if h in right else cell.ljust(w)
                 for h, w, cell in zip(headers, widths, row)]
        lines.append("  ".join(parts).rstrip())
    return lines
