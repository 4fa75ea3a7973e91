"""The PDF reports of ZeroCostDL4Mic notebooks in batch runs.

Each notebook defines ``pdf_export`` (training report) and ``qc_pdf_export`` (quality
control report) and calls them at the end of its training and QC cells. A bug in one (the
Diffusion SMLM notebook's ``pdf_export`` formats a variable it never defines) fails the
cell after the model is saved; in Colab the person runs the next cell anyway, but a batch
run stops there. In batch mode each such call goes through ``hpc_dl4mic_report``
(cellcode/reports.py): a failed report is one printed line and an entry in the task's
``skipped.jsonl`` (``reason: report failed``), and the run goes on.
"""

from __future__ import annotations

import re
from typing import Any

from .sections import _src, section_headings, section_of_cells

HELPER = "hpc_dl4mic_report"
# a statement that starts with a call of the report functions (a definition does not match)
_CALL_RE = re.compile(r"(?m)^(?P<indent>[ \t]*)(?P<name>pdf_export|qc_pdf_export)[ \t]*\(")


def guard_reports(cells: list[Any]) -> list[str]:
    """Route every report call of ``cells`` (in place) through the helper; the sections
    whose cells were changed."""
    sections = section_of_cells({"cells": cells})
    titles = {s.token: s.title for s in section_headings({"cells": cells})}
    changed: list[str] = []
    for ci, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        src = _src(cell)
        if "pdf_export" not in src:
            continue
        head = f"{HELPER}({sections[ci]!r}, {titles.get(sections[ci], '')!r}, "
        new = _CALL_RE.sub(lambda m, head=head: f"{m.group('indent')}{head}{m.group('name')}, ",
                           src)
        section = sections[ci]
        if new != src:
            cell["source"] = new
            if section not in changed:
                changed.append(section)
    return changed
