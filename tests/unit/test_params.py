"""Form fields: parsing every #@param type, listing them, validating values."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from seeddata import COLAB_NOTEBOOKS, configs_with_notebooks

from hpc_dl4mic.errors import InputError, ParameterError
from hpc_dl4mic.notebooks.convert import read_notebook
from hpc_dl4mic.notebooks.params import (
    ParamSpec,
    extract_params,
    parse_param_line,
    to_json,
    validate_values,
)

MINI = Path(__file__).resolve().parent.parent / "data" / "mini_zerocost.ipynb"


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("line, name, ftype, default", [
    ('Training_source = "" #@param {type:"string"}', "Training_source", "string", ""),
    ("number_of_epochs =  100#@param {type:\"number\"}", "number_of_epochs", "number", 100),
    ("initial_learning_rate = 0.0004 #@param {type:\"number\"}", "initial_learning_rate",
     "number", 0.0004),
    ('batch_size =  4#@param{type:"integer"}', "batch_size", "integer", 4),
    ("Use_Default_Advanced_Parameters = True #@param {type:\"boolean\"}",
     "Use_Default_Advanced_Parameters", "boolean", True),
    ('Weights_choice = "best" #@param ["last", "best"]', "Weights_choice", "dropdown", "best"),
    ('Data_type = Single_Images #@param ["Single_Images", "Stacks"] {type:"raw"}', "Data_type",
     "raw", "Single_Images"),
    ('checkpoint = latest#@param {type:"raw"}', "checkpoint", "raw", "latest"),
    ('day = "2024-01-31" #@param {type:"date"}', "day", "date", "2024-01-31"),
    ('patch_size =  64#@param {type:"number"} # in pixels', "patch_size", "number", 64),
    ('patch_size = (128,128,8) #@param {type:"number"} # in pixels', "patch_size", "number",
     (128, 128, 8)),
    ('mask_threshold=0 #@param {type:"slider", min:-6, max:6, step:1}', "mask_threshold",
     "slider", 0),
    ('name = "a # not a comment" #@param {type:"string"}', "name", "string", "a # not a comment"),
    ('  vertical_flip = True #@param {type:"boolean"}', "vertical_flip", "boolean", True),
    ('Tool = "x" # @param {type: "string"}', "Tool", "string", "x"),
])
def test_parse_param_line_reads_name_type_and_default(line, name, ftype, default):
    spec = parse_param_line(line)
    assert spec is not None
    assert (spec.name, spec.type, spec.default) == (name, ftype, default)


def test_slider_keeps_bounds_and_is_float_when_the_step_is():
    spec = parse_param_line("flip = 1 #@param {type:\"slider\", min:0, max:1, step:0.1}")
    assert (spec.minimum, spec.maximum, spec.step) == (0, 1, 0.1)
    assert spec.is_float_slider and spec.default == 1.0 and isinstance(spec.default, float)
    whole = parse_param_line('times = 4 #@param {type:"slider", min:1, max:30, step:1}')
    assert not whole.is_float_slider and whole.default == 4 and isinstance(whole.default, int)


def test_dropdown_choices_and_allow_input():
    spec = parse_param_line('norm = "x" #@param ["x", "minmax"] {allow-input: true}')
    assert spec.type == "dropdown" and spec.choices == ("x", "minmax")
    assert spec.allow_input is True
    raw = parse_param_line("grid_parameter = 2#@param [1, 2, 4, 8, 16, 32] {type:\"raw\"}")
    assert raw.type == "raw" and raw.choices == ("1", "2", "4", "8", "16", "32")
    assert raw.default == "2"


@pytest.mark.parametrize("line", [
    '#Flow_threshold = 0.5 #@param {type:"slider", min:0.1, max:1.1, step:0.1}',
    '# NA =  1.1 #@param {type:"number"}',
    "    #checkpointing_period = 1 #@param {type:\"number\"}",
    "#@markdown ###Path to training images:",
    "x = 1  # no form here",
    "print('#@param')",
])
def test_commented_out_and_plain_lines_are_not_fields(line):
    assert parse_param_line(line) is None


def test_unknown_type_and_bare_param_fall_back_to_raw():
    assert parse_param_line("x = y #@param").type == "raw"
    assert parse_param_line('x = 1 #@param {type:"color"}').type == "raw"


# --------------------------------------------------------------------------- extraction


def test_config_notebooks_have_the_1056_active_fields():
    specs = [s for _cfg, nb in configs_with_notebooks() for s in extract_params(read_notebook(nb))]
    assert len(specs) == 1056


def test_colab_notebooks_have_1099_active_fields_by_type():
    specs = [s for nb in sorted(COLAB_NOTEBOOKS.glob("*.ipynb"))
             for s in extract_params(read_notebook(nb))]
    assert len(specs) == 1099  # 1122 #@param lines, 23 of them commented out
    counts = Counter(s.type for s in specs)
    # the docs count lines (string 398, number 297, boolean 239, dropdown 92, slider 57,
    # integer 27, raw 12); the 23 commented-out ones are 5 string, 10 number, 2 boolean,
    # 4 dropdown and 2 slider lines
    assert counts == {"string": 393, "number": 287, "boolean": 237, "dropdown": 88,
                      "slider": 55, "integer": 27, "raw": 12}


def test_fields_carry_section_cell_line_and_markdown_description():
    nb = read_notebook(COLAB_NOTEBOOKS / "CARE_2D_ZeroCostDL4Mic.ipynb")
    specs = {(s.section, s.name): s for s in extract_params(nb)}
    source = specs[("3.1.", "Training_source")]
    assert source.type == "string" and source.description == "Path to training images:"
    # the #@markdown block just above, through other fields but not through code lines
    described = {name: specs[("3.1.", name)].description
                 for name in ("model_path", "Training_target", "number_of_epochs")}
    assert described == {"model_path": "Name of the model and path to model folder:",
                         "Training_target": "",
                         "number_of_epochs": "Training Parameters Number of epochs:"}
    cell = nb.cells[source.cell_index].source.splitlines()
    assert "Training_source" in cell[source.line_no - 1]
    assert ("3.2.", "Multiply_dataset_by") in specs


def test_repeated_names_are_listed_once_per_section():
    specs = extract_params(read_notebook(MINI))
    repeated = [s.section for s in specs if s.name == "Use_the_current_trained_model"]
    assert repeated == ["5.", "6.1."]
    defaults = [s.default for s in specs if s.name == "Use_the_current_trained_model"]
    assert defaults == [True, False]


def test_to_json_lists_every_field_with_its_spec():
    specs = extract_params(read_notebook(MINI))
    data = json.loads(to_json(specs))
    assert len(data) == len(specs)
    by_name = {d["name"]: d for d in data}
    assert by_name["Multiply_dataset_by"]["minimum"] == 1
    assert by_name["Weights_choice"]["choices"] == ["last", "best"]
    assert set(by_name["batch_size"]) >= {"name", "section", "type", "default", "choices",
                                          "minimum", "maximum", "step", "allow_input",
                                          "description", "cell_index", "line_no"}


# --------------------------------------------------------------------------- validation


@pytest.fixture(scope="module")
def mini_specs() -> list[ParamSpec]:
    return extract_params(read_notebook(MINI))


@pytest.mark.parametrize("name, given, expected", [
    ("number_of_epochs", "3", 3),
    ("number_of_epochs", "2.5", 2.5),
    ("number_of_epochs", "1e-3", 0.001),
    ("patch_size", 32, 32),
    ("batch_size", "8", 8),
    ("batch_size", "8.0", 8),
    ("Use_Default_Advanced_Parameters", "no", False),
    ("Use_Default_Advanced_Parameters", "TRUE", True),
    ("Use_Default_Advanced_Parameters", "on", True),
    ("Use_Default_Advanced_Parameters", False, False),
    ("Multiply_dataset_by", "30", 30),
    ("flip_probability", "0.3", 0.3),
    ("flip_probability", 1, 1.0),
    ("Weights_choice", "last", "last"),
    ("Normalisation", "my-own", "my-own"),
    ("Data_type", "Stacks", "Stacks"),
    ("pooling_steps", "4", "4"),
    ("Acquisition_date", "2025-02-03", "2025-02-03"),
    ("model_name", "abc", "abc"),
    ("Training_source", "/data/x y", "/data/x y"),
])
def test_validate_values_coerces_cli_strings(mini_specs, name, given, expected):
    result = validate_values(mini_specs, {name: given})
    assert result == {name: expected}
    assert type(result[name]) is type(expected)


@pytest.mark.parametrize("name, given, message", [
    ("Multiply_dataset_by", "abc",
     "parameter 'Multiply_dataset_by' (section 3.1.): expected an integer between 1 and 30, "
     "got 'abc'"),
    ("Multiply_dataset_by", "31",
     "parameter 'Multiply_dataset_by' (section 3.1.): expected an integer between 1 and 30, "
     "got '31'"),
    ("flip_probability", "0.25",
     "parameter 'flip_probability' (section 3.1.): expected a number between 0 and 1 in steps "
     "of 0.1, got '0.25'"),
    ("batch_size", "4.5",
     "parameter 'batch_size' (section 3.1.): expected an integer, got '4.5'"),
    ("number_of_epochs", "ten",
     "parameter 'number_of_epochs' (section 3.1.): expected a number, got 'ten'"),
    ("Use_Default_Advanced_Parameters", "maybe",
     "parameter 'Use_Default_Advanced_Parameters' (section 3.1.): expected true or false, "
     "got 'maybe'"),
    ("Weights_choice", "worst",
     "parameter 'Weights_choice' (section 3.1.): expected one of 'last', 'best', got 'worst'"),
    ("Data_type", "Movies",
     "parameter 'Data_type' (section 3.1.): expected one of Single_Images, Stacks, got 'Movies'"),
    ("Acquisition_date", "31/01/2024",
     "parameter 'Acquisition_date' (section 3.1.): expected a date YYYY-MM-DD, got '31/01/2024'"),
])
def test_validate_values_rejects_with_one_line_naming_parameter_and_allowed(
        mini_specs, name, given, message):
    with pytest.raises(ParameterError) as err:
        validate_values(mini_specs, {name: given})
    assert str(err.value) == message
    assert "\n" not in str(err.value)
    assert isinstance(err.value, InputError) and err.value.exit_code == 2


def test_unknown_parameter_suggests_close_names(mini_specs):
    with pytest.raises(ParameterError) as err:
        validate_values(mini_specs, {"numer_of_epochs": "3"})
    text = str(err.value)
    assert text.startswith("unknown parameter 'numer_of_epochs'")
    assert "'number_of_epochs'" in text and "\n" not in text


def test_repeated_name_must_fit_every_field(mini_specs):
    assert validate_values(mini_specs, {"Use_the_current_trained_model": "yes"}) == {
        "Use_the_current_trained_model": True}
    specs = [ParamSpec("x", "3.1.", "integer", 1), ParamSpec("x", "5.", "slider", 2, minimum=0,
                                                             maximum=3, step=1)]
    assert validate_values(specs, {"x": "3"}) == {"x": 3}
    with pytest.raises(ParameterError, match=r"parameter 'x' \(section 5\.\): expected an "
                                             r"integer between 0 and 3, got '7'"):
        validate_values(specs, {"x": "7"})


def test_raw_values_must_be_python_expressions():
    specs = [ParamSpec("checkpoint", "5.", "raw", "latest")]
    assert validate_values(specs, {"checkpoint": "100"}) == {"checkpoint": "100"}
    assert validate_values(specs, {"checkpoint": 100}) == {"checkpoint": "100"}
    with pytest.raises(ParameterError, match="expected a Python expression"):
        validate_values(specs, {"checkpoint": "1 +"})


def test_number_with_tuple_default_accepts_a_tuple():
    spec = parse_param_line('patch_size = (128,128,8) #@param {type:"number"} # in pixels')
    assert validate_values([spec], {"patch_size": "(64, 64, 4)"}) == {"patch_size": [64, 64, 4]}
    assert validate_values([spec], {"patch_size": "64"}) == {"patch_size": 64}
