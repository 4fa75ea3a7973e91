"""`convert` and `params` from the command line."""

from __future__ import annotations

import json

import nbformat
from click.testing import CliRunner
from seeddata import COLAB_NOTEBOOKS

from hpc_dl4mic.cli import main

CARE = COLAB_NOTEBOOKS / "CARE_2D_ZeroCostDL4Mic.ipynb"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_convert_a_config_in_batch_mode_uses_its_sections(tmp_path):
    result = run("convert", "CARE_2D_DL4Mic", "--mode", "batch", "--notebook", str(CARE),
                 "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    out = tmp_path / "CARE_2D_ZeroCostDL4Mic.batch.ipynb"
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["hpc_dl4mic"]["sections_removed"] == ["1.1.", "1.2.", "2.", "6.3."]
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


def test_convert_an_ipynb_directly_with_renumbering(tmp_path):
    out = tmp_path / "x.ipynb"
    result = run("convert", str(CARE), "--sections", "1.1. 1.2. 2. 6.3.", "--renumber",
                 "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "google.colab" not in out.read_text().replace("# [hpc-dl4mic] removed", "")


def test_convert_missing_section_is_exit_2_naming_it(tmp_path):
    result = run("convert", str(CARE), "--sections", "9.9.", "-o", str(tmp_path / "x.ipynb"))
    assert result.exit_code == 2
    assert "9.9." in result.stderr and "6.3." in result.stderr
    assert not (tmp_path / "x.ipynb").exists()


def test_params_lists_fields_as_json():
    result = run("params", "CARE_2D_DL4Mic", "--notebook", str(CARE), "--json")
    fields = json.loads(result.output)
    names = {f["name"] for f in fields}
    assert {"number_of_epochs", "Training_source"} <= names
    assert all({"name", "section", "type", "default"} <= set(f) for f in fields)


def test_params_checks_values_and_types_them():
    result = run("params", str(CARE), "-p", "number_of_epochs", "7",
                 "-p", "Use_Default_Advanced_Parameters", "false")
    assert result.exit_code == 0
    assert json.loads(result.output) == {"number_of_epochs": 7,
                                         "Use_Default_Advanced_Parameters": False}


def test_params_bad_value_is_one_line_exit_2():
    result = run("params", str(CARE), "-p", "number_of_epochs", "lots")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "number_of_epochs" in result.stderr


def test_params_table_has_a_header_and_aligned_columns():
    result = run("params", "CARE_2D_DL4Mic", "--notebook", str(CARE))
    assert result.exit_code == 0
    lines = result.output.split("\n\n")[0].splitlines()  # the table, before the notes
    assert lines[0].split() == ["SECTION", "NAME", "TYPE", "DEFAULT", "ALLOWED"]
    column = lines[0].index("TYPE")
    assert all(line[column - 2:column] == "  " for line in lines[1:])
    assert all(line[column] != " " for line in lines[1:])
