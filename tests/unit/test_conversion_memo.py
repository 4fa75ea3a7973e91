"""The memo of converted notebooks is keyed by all of the converter's code."""

from __future__ import annotations

import shutil
from pathlib import Path

import hpc_dl4mic.notebooks as notebooks
from hpc_dl4mic.images.inputs import _converter_digest

PACKAGE = Path(notebooks.__file__).parent


def test_a_change_to_the_cell_code_changes_the_converter_digest(tmp_path):
    copy = tmp_path / "notebooks"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = _converter_digest(copy)
    assert _converter_digest(copy) == before == _converter_digest(PACKAGE)
    cell = copy / "cellcode" / "dirs.py"
    cell.write_text(cell.read_text() + "\n# changed\n")
    assert _converter_digest(copy) != before


def test_a_change_to_a_rewrite_module_changes_the_converter_digest(tmp_path):
    copy = tmp_path / "notebooks"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = _converter_digest(copy)
    (copy / "rewrites.py").write_text((copy / "rewrites.py").read_text() + "\n")
    assert _converter_digest(copy) != before
