"""Where `convert` and `render` write: never over an input, folders created as needed."""

from __future__ import annotations

import shutil

from click.testing import CliRunner
from seeddata import COLAB_NOTEBOOKS

from hpc_dl4mic.cli import main

CARE = COLAB_NOTEBOOKS / "CARE_2D_ZeroCostDL4Mic.ipynb"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_readme_convert_example_in_the_notebooks_folder_keeps_the_original(tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(CARE, "CARE_2D_ZeroCostDL4Mic.ipynb")
    result = run("convert", "CARE_2D_DL4Mic", "--notebook", "CARE_2D_ZeroCostDL4Mic.ipynb")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "CARE_2D_ZeroCostDL4Mic.ipynb").read_bytes() == CARE.read_bytes()
    assert result.stdout.strip() == "CARE_2D_ZeroCostDL4Mic.hpc.ipynb"
    assert "CARE_2D_ZeroCostDL4Mic.hpc.ipynb" in result.stderr
    assert "hpc_dl4mic" in (tmp_path / "CARE_2D_ZeroCostDL4Mic.hpc.ipynb").read_text()


def test_convert_into_the_inputs_own_folder_picks_the_hpc_name(tmp_path):
    src = tmp_path / "nb.ipynb"
    shutil.copyfile(CARE, src)
    result = run("convert", str(src), "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert src.read_bytes() == CARE.read_bytes()
    assert (tmp_path / "nb.hpc.ipynb").is_file()


def test_convert_default_name_elsewhere_is_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("convert", "CARE_2D_DL4Mic", "--notebook", str(CARE), "--mode", "batch")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "CARE_2D_ZeroCostDL4Mic.batch.ipynb").is_file()
    assert result.stderr == ""


def test_convert_output_with_trailing_slash_creates_that_folder(tmp_path):
    result = run("convert", "CARE_2D_DL4Mic", "--notebook", str(CARE),
                 "-o", f"{tmp_path}/newdir/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "newdir").is_dir()
    assert (tmp_path / "newdir" / "CARE_2D_ZeroCostDL4Mic.ipynb").is_file()


def test_convert_output_in_missing_folders_creates_them(tmp_path):
    out = tmp_path / "missing" / "sub" / "out.ipynb"
    result = run("convert", "CARE_2D_DL4Mic", "--notebook", str(CARE), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["out.ipynb"]  # no temp file left


def test_render_output_in_missing_folders_creates_them(tmp_path):
    out = tmp_path / "missing" / "sub"
    result = run("render", "CARE_2D_DL4Mic", "--apptainer", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "CARE_2D_DL4Mic.def").is_file()


def test_render_again_into_a_folder_with_other_inputs_is_allowed(tmp_path):
    first = run("render", "CARE_2D_DL4Mic", "-o", str(tmp_path / "out"), "--notebook",
                str(CARE))
    assert first.exit_code == 0, first.output
    again = run("render", "CARE_2D_DL4Mic", "-o", str(tmp_path / "out"), "--notebook",
                str(CARE))
    assert again.exit_code == 0, again.output
