"""Sweep expansion and validation (batch/sweep.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpc_dl4mic.batch.sweep import (
    common_values,
    expand,
    load_sweep,
    load_values_file,
    parse_sweep,
    varying,
)
from hpc_dl4mic.errors import InputError
from hpc_dl4mic.notebooks.convert import read_notebook
from hpc_dl4mic.notebooks.params import extract_params

MINI = Path(__file__).resolve().parent.parent / "data" / "mini_zerocost.ipynb"


@pytest.fixture(scope="module")
def specs():
    return extract_params(read_notebook(MINI))


def test_grid_product_then_rows(specs):
    sweep = parse_sweep({"grid": {"flip_probability": [0.1, 0.2], "Weights_choice":
                                  ["last", "best"]},
                         "rows": [{"number_of_epochs": 3}]})
    tasks = expand(specs, sweep, {"model_name": "m"})
    assert [t.index for t in tasks] == [0, 1, 2, 3, 4]
    assert tasks[0].params == {"model_name": "m", "flip_probability": 0.1,
                               "Weights_choice": "last"}
    assert tasks[4].params == {"model_name": "m", "number_of_epochs": 3}
    assert varying(tasks) == ["flip_probability", "Weights_choice", "number_of_epochs"]


def test_no_sweep_is_one_task(specs):
    assert [t.params for t in expand(specs, None, {"batch_size": "8"})] == [{"batch_size": 8}]


def test_bad_grid_value_names_the_entry(specs):
    sweep = parse_sweep({"grid": {"Weights_choice": ["last", "worst"]}}, "s.yaml")
    with pytest.raises(InputError, match=r"s.yaml: grid.Weights_choice\[1\]: .*one of"):
        expand(specs, sweep, {})


def test_bad_row_value_names_the_row(specs):
    sweep = parse_sweep({"rows": [{"batch_size": 2}, {"Multiply_dataset_by": 99}]}, "s.yaml")
    with pytest.raises(InputError, match=r"s.yaml: rows\[1\]: .*Multiply_dataset_by.*between"):
        expand(specs, sweep, {})


def test_unknown_parameter_in_common_values(specs):
    with pytest.raises(InputError, match=r"-p/-f: unknown parameter 'learning_rat'"):
        expand(specs, None, {"learning_rat": 1})


def test_a_name_given_both_ways_is_an_error(specs):
    with pytest.raises(InputError, match="also given in p.yaml"):
        common_values([("batch_size", "2")], {"batch_size": 4}, "p.yaml")
    sweep = parse_sweep({"grid": {"batch_size": [1, 2]}}, "s.yaml")
    with pytest.raises(InputError, match="'batch_size' is also given with -p/-f"):
        expand(specs, sweep, {"batch_size": 4})


@pytest.mark.parametrize("data, message", [
    ([1], "expected a mapping"),
    ({"grid": {"x": []}}, "grid.x: expected a non-empty list"),
    ({"grid": [1]}, "grid: expected a mapping"),
    ({"rows": [3]}, r"rows\[0\]: expected a mapping"),
    ({"cols": []}, "unknown key 'cols'"),
    ({"rows": [{"1x": 2}]}, "not a parameter name"),
])
def test_malformed_sweeps(data, message):
    with pytest.raises(InputError, match=message):
        parse_sweep(data, "s.yaml")


def test_empty_sweep_has_no_tasks(specs):
    with pytest.raises(InputError, match="no tasks"):
        expand(specs, parse_sweep({}, "s.yaml"), {})


def test_files_and_yaml_errors(tmp_path):
    good = tmp_path / "sweep.yaml"
    good.write_text("grid:\n  batch_size: [1, 2]\nrows:\n  - {model_name: x}\n")
    assert load_sweep(good).grid == {"batch_size": [1, 2]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid:\n  batch_size: [1, 2\n")
    with pytest.raises(InputError, match=r"bad.yaml:\d+:\d+: not valid YAML"):
        load_sweep(bad)
    values = tmp_path / "p.yaml"
    values.write_text("batch_size: 2\n")
    assert load_values_file(values) == {"batch_size": 2}


def test_thousand_combinations_are_checked_quickly(specs):
    import time

    sweep = parse_sweep({"grid": {"batch_size": list(range(1, 11)),
                                  "Multiply_dataset_by": list(range(1, 11)),
                                  "flip_probability": [round(i / 10, 1) for i in range(10)]}})
    started = time.monotonic()
    tasks = expand(specs, sweep, {})
    assert len(tasks) == 1000 and time.monotonic() - started < 2
