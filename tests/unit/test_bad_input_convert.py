"""Bad-input catalogue: `convert` and `render` (inputs are never overwritten, missing files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from badinput import Case, check
from seeddata import COLAB_NOTEBOOKS

CARE = COLAB_NOTEBOOKS / "CARE_2D_ZeroCostDL4Mic.ipynb"
REQUIREMENTS = Path(__file__).resolve().parents[1] / "data" / "requirements-small.txt"

# Each case runs in a fresh folder holding the files of its ``setup`` (relative path: source).
SETUP: dict[str, dict[str, Path]] = {
    "convert-onto-its-input": {"CARE_2D_ZeroCostDL4Mic.ipynb": CARE},
    "convert-batch-onto-its-input": {"nb.batch.ipynb": CARE},
    "convert-ipynb-onto-itself-by-other-spelling": {"sub/nb.ipynb": CARE},
    "render-onto-its-notebook": {"out/notebooks/CARE_2D_ZeroCostDL4Mic.ipynb": CARE},
    "render-onto-its-requirements": {"out/requirements.txt": REQUIREMENTS},
    "convert-parent-is-a-file": {"afile": REQUIREMENTS},
}

CASES = [
    Case("convert-onto-its-input",
         ["convert", "CARE_2D_DL4Mic", "--notebook", "CARE_2D_ZeroCostDL4Mic.ipynb",
          "-o", "CARE_2D_ZeroCostDL4Mic.ipynb"],
         ["-o", "CARE_2D_ZeroCostDL4Mic.ipynb", "never overwritten"]),
    Case("convert-batch-onto-its-input",
         ["convert", "nb.batch.ipynb", "--mode", "batch", "-o", "nb.batch.ipynb"],
         ["-o", "nb.batch.ipynb"]),
    Case("convert-ipynb-onto-itself-by-other-spelling",
         ["convert", "sub/nb.ipynb", "-o", "sub/../sub/nb.ipynb"],
         ["-o", "sub/../sub/nb.ipynb", "nb.ipynb"]),
    Case("convert-missing-notebook",
         ["convert", "CARE_2D_DL4Mic", "--notebook", "missing.ipynb", "-o", "out/"],
         ["--notebook", "missing.ipynb"], absent=["out"]),
    Case("convert-missing-ipynb-target", ["convert", "nothere.ipynb", "-o", "out/"],
         ["nothere.ipynb"], absent=["out"]),
    Case("convert-parent-is-a-file",
         ["convert", "CARE_2D_DL4Mic", "--notebook", str(CARE), "-o", "afile/out.ipynb"],
         ["afile"]),
    Case("render-onto-its-notebook",
         ["render", "CARE_2D_DL4Mic", "-o", "out", "--notebook",
          "out/notebooks/CARE_2D_ZeroCostDL4Mic.ipynb"],
         ["-o out", "--notebook", "CARE_2D_ZeroCostDL4Mic.ipynb"],
         absent=["out/CARE_2D_DL4Mic.def", "out/notebooks/CARE_2D_ZeroCostDL4Mic.batch.ipynb"]),
    Case("render-onto-its-requirements",
         ["render", "CARE_2D_DL4Mic", "-o", "out", "--requirements", "out/requirements.txt"],
         ["-o out", "--requirements", "requirements.txt"],
         absent=["out/CARE_2D_DL4Mic.def", "out/Dockerfile"]),
    Case("render-missing-requirements",
         ["render", "CARE_2D_DL4Mic", "-o", "out", "--requirements", "nope.txt"],
         ["--requirements", "nope.txt"], absent=["out"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_convert_and_render_input_is_one_line_and_leaves_inputs_alone(case, tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    for rel, src in SETUP.get(case.id, {}).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp_path / rel)
    check(case, cwd=tmp_path)
    for rel, src in SETUP.get(case.id, {}).items():
        assert (tmp_path / rel).read_bytes() == src.read_bytes(), (case.id, rel)
