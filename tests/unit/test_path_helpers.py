"""Conversion keeps absolute paths through the notebooks' path helpers: StarDist 2D's
`check_base_path` prefixed the working directory to any path not under it, so `/data/x`
became `/results/data/x` in a batch run (issue 11)."""

from __future__ import annotations

import re

from seeddata import COLAB_NOTEBOOKS

from hpc_dl4mic.notebooks.convert import convert, read_notebook
from hpc_dl4mic.notebooks.rewrites import KEEP_ABSOLUTE, _keep_absolute_paths

HELPER = """def check_base_path(base_path, path_to_data):
  if base_path not in path_to_data:
    if path_to_data[0] == '/':
      path_to_data = path_to_data[1:]
    path_to_data = os.path.join(base_path, path_to_data)
  return path_to_data
"""


def run_helper(src: str):
    import os

    space = {"os": os}
    exec(src, space)  # noqa: S102 - the converted helper, as the notebook runs it
    return space["check_base_path"]


def test_the_helper_keeps_absolute_paths_and_still_joins_relative_ones():
    helper = run_helper(_keep_absolute_paths(HELPER))
    assert helper("/results", "/data/train") == "/data/train"
    assert helper("/results", "train") == "/results/train"
    assert run_helper(HELPER)("/results", "/data/train") == "/results/data/train"  # before


def test_only_a_helper_whose_body_starts_with_the_check_is_changed():
    top_level = "if base_path not in p:\n  p = base_path + p\n"
    assert _keep_absolute_paths(top_level) == top_level


def test_the_real_stardist_notebook_keeps_absolute_paths_in_both_modes():
    nb = read_notebook(COLAB_NOTEBOOKS / "StarDist_2D_ZeroCostDL4Mic.ipynb")
    for mode in ("batch", "interactive"):
        cells = [c.source for c in convert(nb, mode=mode).cells if c.cell_type == "code"]
        cell = next(c for c in cells if "def check_base_path" in c)
        assert KEEP_ABSOLUTE in cell
        body = re.search(r"def check_base_path.*?\n  return path_to_data\n", cell, re.S)
        assert run_helper(body.group(0))("/results", "/data/x") == "/data/x"
