"""Notebook conversion: sections, Colab stripping, offline safety, provenance, both modes."""

from __future__ import annotations

import ast
import datetime
import hashlib
import json
import re
import sys
import types
import warnings
from pathlib import Path

import nbformat
import pytest
import yaml
from seeddata import COLAB_NOTEBOOKS, configs_with_notebooks

from hpc_dl4mic import __version__
from hpc_dl4mic.errors import InputError, NotebookError
from hpc_dl4mic.notebooks.convert import (
    convert,
    convert_file,
    default_path,
    read_notebook,
    section_headings,
    write_notebook,
)

MINI = Path(__file__).resolve().parent.parent / "data" / "mini_zerocost.ipynb"
CARE_2D = COLAB_NOTEBOOKS / "CARE_2D_ZeroCostDL4Mic.ipynb"
VERSION_URL = re.compile(r"raw\.githubusercontent\.com/\S*Latest_Notebook_versions\.csv")
MAGIC = re.compile(r"^([ \t]*)(?:[!%]|[A-Za-z_][\w, ]*=[ \t]*[!%])")


def sections_of(config: Path) -> str | None:
    return yaml.safe_load(config.read_text())["config"]["dl4miceverywhere"]["sections_to_remove"]


def python_of(source: str) -> str:
    """A cell's source with IPython magics (!cmd, %magic) replaced by ``pass``."""
    return "\n".join(
        f"{m.group(1)}pass" if (m := MAGIC.match(line)) else line for line in source.split("\n"))


def parse(source: str) -> ast.Module:
    with warnings.catch_warnings():  # the notebooks hold invalid escapes like '\/'
        warnings.simplefilter("ignore")
        return ast.parse(python_of(source))


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def headings(nb) -> list[str]:
    return [f"{s.token} {s.title}" for s in section_headings(nb)]


CONFIG_PAIRS = configs_with_notebooks()


@pytest.fixture(scope="module")
def notebooks() -> dict[Path, nbformat.NotebookNode]:
    return {nb: read_notebook(nb) for _cfg, nb in CONFIG_PAIRS}


# --------------------------------------------------------------------------- all 29 notebooks


def test_there_are_29_config_notebooks():
    assert len(CONFIG_PAIRS) == 29


@pytest.mark.parametrize("mode", ["batch", "interactive"])
@pytest.mark.parametrize("config, notebook", CONFIG_PAIRS,
                         ids=[cfg.parent.name for cfg, _nb in CONFIG_PAIRS])
def test_every_config_notebook_converts_to_valid_colab_free_python(config, notebook, mode,
                                                                   notebooks, tmp_path):
    out = convert(notebooks[notebook], mode=mode, sections_to_remove=sections_of(config),
                  source_name=notebook.name, config_name=config.parent.name,
                  results_dir=str(tmp_path / "results"))
    nbformat.validate(out)
    for cell in code_cells(out):
        assert "google.colab" not in cell.source
        assert not re.search(r"^\s*[!%]\s*(pip3?|conda)\s+install", cell.source, re.M)
        assert "#@param" not in re.sub(r"^\s*#.*$", "", cell.source, flags=re.M)
        parse(cell.source)  # the rewrites keep every cell valid Python
        assert cell.outputs == [] and cell.execution_count is None
    meta = out.metadata["hpc_dl4mic"]
    assert meta["mode"] == mode and meta["config"] == config.parent.name
    rewritten = sum(c.source.count("  # form field: ") for c in code_cells(out))
    assert rewritten == len(meta["parameters"]) > 0  # every field was turned into its mode
    # the generated cells run: a batch run without given values sees none as given
    ns: dict = {"__name__": "__main__"}
    generated = [c for c in code_cells(out) if c.metadata.get("hpc_dl4mic", {}).get(
        "generated") in ("parameters", "setup")]
    for cell in generated:
        exec(compile(cell.source, "<generated>", "exec"), ns)
    if mode == "batch":
        assert ns["__hpc_dl4mic_injected__"] == {}
    else:
        assert sum(len(f) for f in ns["HPC_DL4MIC_FORMS"].values()) == len(meta["parameters"])


def test_version_check_is_wrapped_and_the_definitions_after_it_stay_top_level(notebooks):
    checked = 0
    for _cfg, path in CONFIG_PAIRS:
        nb = notebooks[path]
        out = convert(nb, mode="batch")
        before = [c for c in code_cells(nb) if VERSION_URL.search(c.source)]
        after = [c for c in code_cells(out) if VERSION_URL.search(c.source)]
        assert len(before) == len(after)
        for old, new in zip(before, after):
            old_tree = parse(old.source)
            new_tree = parse(new.source)
            old_defs = [n.name for n in old_tree.body if isinstance(n, ast.FunctionDef)]
            new_defs = [n.name for n in new_tree.body if isinstance(n, ast.FunctionDef)]
            assert old_defs == new_defs  # e.g. pdf_export is still defined if the fetch fails
            fetch_line = next(i for i, line in enumerate(new.source.split("\n"), start=1)
                              if VERSION_URL.search(line) and not line.lstrip().startswith("#"))
            wrapping = [n for n in ast.walk(new_tree) if isinstance(n, ast.Try)
                        and n.lineno < fetch_line <= n.end_lineno]
            assert wrapping, path.name
            assert "setdefaulttimeout(5)" in new.source and "HPC_DL4MIC_OFFLINE" in new.source
            checked += 1
    assert checked == 27  # every Colab notebook has one; the two Bespoke ones have none


def test_requirements_file_toward_the_root_goes_to_the_results_dir(notebooks):
    out = convert(notebooks[CARE_2D], mode="batch", results_dir="/results")
    text = "\n".join(c.source for c in code_cells(out))
    assert "'../' * (dir_count)" not in text
    assert "path = '/results/requirements.txt'" in text
    assert "!pip freeze > /results/requirements.txt" in text
    assert "!pip freeze > $path" in text  # $path is the redirected path above


# --------------------------------------------------------------------------- sections


def test_sections_are_removed_with_their_subsections_and_numbers_kept(notebooks):
    out = convert(notebooks[CARE_2D], mode="batch", sections_to_remove="1.1. 1.2. 2. 6.3.")
    titles = headings(out)
    assert titles[:4] == ["0. Before getting started", "1. Install CARE and dependencies",
                          "1.3. Load key dependencies", "3. Select your parameters and paths"]
    assert not any(t.startswith(("1.1.", "1.2.", "2.", "6.3.")) for t in titles)
    assert "7. Version log" in titles and "6.2. Inspect the predicted output" in titles
    text = "\n".join(c.source for c in out.cells)
    assert "drive.mount" not in text and "Install key dependencies" not in text
    assert "Thank you for using CARE 2D!" in text  # the unnumbered heading after 7. stays
    assert out.metadata["hpc_dl4mic"]["sections_removed"] == ["1.1.", "1.2.", "2.", "6.3."]
    assert out.metadata["hpc_dl4mic"]["renumbered"] is False


def test_renumber_moves_later_siblings_up_like_dl4miceverywhere(notebooks):
    out = convert(notebooks[CARE_2D], mode="batch", sections_to_remove="1.1. 1.2. 2. 6.3.",
                  renumber=True)
    assert [t.split(" ", 1)[0] for t in headings(out)] == [
        "0.", "1.", "1.1.", "2.", "2.1.", "2.2.", "2.3.", "3.", "3.1.", "3.2.",
        "4.", "4.1.", "4.2.", "5.", "5.1.", "5.2.", "6."]
    titles = headings(out)
    assert "1.1. Load key dependencies" in titles  # was 1.3.
    assert "2.1. Setting main training parameters" in titles  # was 3.1.
    assert "6. Version log" in titles  # was 7.
    heading_line = next(c.source for c in out.cells if "Load key dependencies**" in c.source)
    assert "# **1.1. Load key dependencies**" in heading_line
    sections = {p["section"] for p in out.metadata["hpc_dl4mic"]["parameters"]}
    assert sections == {"2.1.", "2.2.", "2.3.", "4.", "4.2.", "5.1."}


def test_renumber_keeps_the_trailing_dot_style_of_each_heading(notebooks):
    nb = notebooks[COLAB_NOTEBOOKS / "StarDist_2D_ZeroCostDL4Mic.ipynb"]
    out = convert(nb, mode="batch", sections_to_remove="2.", renumber=True)
    text = "\n".join(c.source for c in out.cells if c.cell_type == "markdown")
    assert "## **5.1 Generate prediction(s) from unseen dataset**" in text  # was "6.1 " (no dot)


def test_missing_section_is_an_error_naming_it_and_the_existing_ones(notebooks):
    with pytest.raises(NotebookError) as err:
        convert(notebooks[CARE_2D], mode="batch", sections_to_remove="2. 8.1.",
                source_name="CARE_2D_ZeroCostDL4Mic.ipynb")
    text = str(err.value)
    assert "\n" not in text and isinstance(err.value, InputError)
    assert text.startswith("CARE_2D_ZeroCostDL4Mic.ipynb has no section 8.1. to remove;")
    assert "its sections are: 0. 1. 1.1. 1.2. 1.3. 2. 2.1. 2.2. 3. 3.1." in text


def test_section_tokens_are_normalised_and_checked(notebooks):
    out = convert(notebooks[CARE_2D], mode="batch", sections_to_remove=["2", "6.3."])
    assert out.metadata["hpc_dl4mic"]["sections_removed"] == ["2.", "6.3."]
    assert convert(notebooks[CARE_2D], mode="batch", sections_to_remove=None)
    with pytest.raises(NotebookError, match=r"section 'two' is not a section number"):
        convert(notebooks[CARE_2D], mode="batch", sections_to_remove="two")


def test_duplicate_heading_tokens_are_all_removed(notebooks):
    nb = notebooks[COLAB_NOTEBOOKS / "Deep-STORM_2D_ZeroCostDL4Mic.ipynb"]
    out = convert(nb, mode="batch", sections_to_remove="3.1.")
    text = "\n".join(c.source for c in out.cells)
    assert "Load training data" not in text and "Simulate training data" not in text
    assert "3.2." in " ".join(headings(out))


def test_section_headings_read_bold_and_dotless_numbers():
    found = section_headings(read_notebook(MINI))
    by_token = {s.token: s for s in found}
    assert by_token["1.3."].title == "Load key dependencies" and by_token["1.3."].level == 2
    assert by_token["2.2."].number_text == "2.2"  # written without the trailing dot
    assert by_token["3."].level == 1 and by_token["3."].cell_index == 13


def test_unknown_mode_is_an_error(notebooks):
    with pytest.raises(NotebookError, match="mode 'headless' is not one of"):
        convert(notebooks[CARE_2D], mode="headless")


# --------------------------------------------------------------------------- stripping


def colab_cell(source: str, **kw) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    return convert(nb, mode="batch", **kw)


def test_installs_are_removed_and_an_indented_one_becomes_pass():
    out = colab_cell("!pip install -q tifffile # tiff\n"
                     "%pip install wget==3.2\n"
                     "!pip3 install --upgrade pip -q\n"
                     "!conda install -y numpy\n"
                     "!python -m pip install fpdf2\n"
                     "if True:\n"
                     "  !pip install Augmentor\n"
                     "  import os\n"
                     "!pip install -r requirements.txt\n"
                     "!pip install -e .\n"
                     "!pip freeze\n")
    src = out.cells[-1].source
    assert "# [hpc-dl4mic] removed: !pip install -q tifffile # tiff" in src
    assert "  pass  # [hpc-dl4mic] removed: !pip install Augmentor" in src
    assert not re.search(r"^\s*[!%]\s*(pip3?|conda|python -m pip)\s+install", src, re.M)
    assert "!pip freeze" in src
    assert out.metadata["hpc_dl4mic"]["changes"]["removed_install_lines"] == 8


def test_setup_py_installs_and_chdirs_into_a_commented_out_clone_are_removed():
    out = colab_cell("# !git clone https://github.com/uhlmanngroup/splinedist\n"
                     "base_path = os.getcwd()\n"
                     "os.chdir(base_path + \"/splinedist\")\n"
                     "!python setup.py install\n"
                     "!python3 splinegenerator.py install\n"
                     "import splinedist.splinegenerator as sg\n"
                     "os.chdir(base_path)\n"
                     "os.chdir(base_path + '/other')\n"
                     "!python train.py -c config.json\n")
    lines = out.cells[-1].source.splitlines()
    assert "# [hpc-dl4mic] removed: !python setup.py install" in lines
    assert "# [hpc-dl4mic] removed: !python3 splinegenerator.py install" in lines
    assert not any(ln.startswith("os.chdir(base_path + \"/splinedist\")") for ln in lines)
    assert "os.chdir(base_path)" in lines and "os.chdir(base_path + '/other')" in lines
    assert "!python train.py -c config.json" in lines  # running a script is not installing
    assert "import splinedist.splinegenerator as sg" in lines


def test_a_chdir_into_a_clone_that_runs_is_kept():
    src = colab_cell("!git clone https://github.com/x/splinedist\n"
                     "os.chdir(base_path + '/splinedist')\n").cells[-1].source
    assert "os.chdir(base_path + '/splinedist')" in src.splitlines()


def test_splinedist_2d_no_longer_enters_the_clone_its_removed_install_section_made():
    # found by bench/notebook_matrix.py: section 1.3. chdir()s into base_path/splinedist and
    # runs `!python setup.py install` there; the clone was in section 1.1., which the config
    # removes, and splinedist comes from the requirements file
    config = next(c for c, _ in configs_with_notebooks() if c.parent.name == "SplineDist_2D_DL4Mic")
    nb = convert(read_notebook(COLAB_NOTEBOOKS / "SplineDist_2D_ZeroCostDL4Mic.ipynb"),
                 sections_to_remove=sections_of(config), mode="batch")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    active = [ln.strip() for ln in code.splitlines() if not ln.strip().startswith("#")]
    assert not any("splinedist\")" in ln and "chdir" in ln for ln in active)
    assert not any(re.match(r"!python\S* \S+\.py install", ln) for ln in active)
    assert "from splinedist.models import Config2D, SplineDist2D, SplineDistData2D" in active


def test_local_installs_can_be_kept_like_dl4miceverywhere():
    src = colab_cell("!pip install -r x/requirements.txt\n!pip install -e .\n!pip install wget\n",
                     keep_local_installs=True).cells[-1].source
    assert "!pip install -r x/requirements.txt" in src.splitlines()
    assert "!pip install -e ." in src.splitlines()
    assert "# [hpc-dl4mic] removed: !pip install wget" in src


def test_google_colab_code_is_removed():
    out = colab_cell("from google.colab import drive\n"
                     "import google.colab.output\n"
                     "from google.colab.patches import cv2_imshow\n"
                     "drive.mount('/content/gdrive',\n"
                     "            force_remount=True)\n"
                     "files = sorted(files)\n"
                     "files.download('x.zip')\n"
                     "%tensorflow_version 1.x\n"
                     "# from google.colab import files\n"
                     "if 'google.colab' in sys.modules:\n"
                     "    from google.colab import drive\n"
                     "    drive.mount('/content/drive')\n"
                     "google.colab.output.enable_custom_widget_manager()\n")
    src = out.cells[-1].source
    assert "google.colab" not in src and "drive.mount" not in src.replace("removed: drive", "")
    assert "files = sorted(files)" in src  # a variable named files is not Colab's
    assert "if False:  # [hpc-dl4mic] not on Colab" in src
    assert "    pass  # [hpc-dl4mic] removed: Colab-only import" in src
    assert "force_remount" not in src.replace("removed: drive.mount", "")
    parse(src)


def test_path_defaults_point_at_the_data_and_results_dirs():
    assert default_path("Training_source", "/content/gdrive/MyDrive/x/train", "/data",
                        "/results") == "/data/train"
    assert default_path("QC_model_folder", "/content/gdrive/MyDrive/P/FNET-102", "/data",
                        "/results") == "/results/FNET-102"
    assert default_path("Result_folder", "/content", "/data", "/results") == "/results"
    assert default_path("Saving_path", "/content/gdrive/My Drive", "/d", "/r") == "/r"
    out = convert(read_notebook(MINI), mode="batch", data_dir="/in", results_dir="/out")
    defaults = {s["name"]: s["default"] for s in out.metadata["hpc_dl4mic"]["parameters"]}
    assert defaults["Training_source"] == "/in/train_images"
    assert defaults["model_path"] == "/out"
    assert defaults["Data_folder"] == "/in/test_images"
    assert defaults["Result_folder"] == "/out/results"
    assert defaults["QC_model_folder"] == ""  # empty defaults stay empty
    changes = out.metadata["hpc_dl4mic"]["changes"]["path_defaults"]
    assert changes == ["Training_source", "model_path", "Data_folder", "Result_folder"]


def test_fnet_2d_qc_model_folder_default_moves_to_results(notebooks):
    nb = notebooks[COLAB_NOTEBOOKS / "fnet_2D_ZeroCostDL4Mic.ipynb"]
    params = convert(nb, mode="batch").metadata["hpc_dl4mic"]["parameters"]
    qc = next(p for p in params if p["name"] == "QC_model_folder")
    assert qc["default"] == "/results/FNET-downsampled102"


# --------------------------------------------------------------------------- provenance, purity


def test_provenance_metadata_records_source_config_sections_and_version(tmp_path):
    dst = tmp_path / "out.ipynb"
    convert_file(MINI, dst, mode="batch", sections_to_remove="1.2. 2.", config_name="Mini_DL4Mic")
    meta = read_notebook(dst).metadata["hpc_dl4mic"]
    assert meta["source_notebook"] == "mini_zerocost.ipynb"
    assert meta["source_sha256"] == hashlib.sha256(MINI.read_bytes()).hexdigest()
    assert meta["config"] == "Mini_DL4Mic"
    assert meta["sections_removed"] == ["1.2.", "2."]
    assert meta["tool"] == "hpc-dl4mic" and meta["tool_version"] == __version__
    assert meta["mode"] == "batch"
    assert (meta["data_dir"], meta["results_dir"]) == ("/data", "/results")


def test_convert_does_not_change_its_input_and_is_deterministic():
    nb = read_notebook(CARE_2D)
    before = json.dumps(nb, sort_keys=True)
    one = nbformat.writes(convert(nb, mode="interactive", sections_to_remove="2."))
    two = nbformat.writes(convert(read_notebook(CARE_2D), mode="interactive",
                                  sections_to_remove="2."))
    assert json.dumps(nb, sort_keys=True) == before
    assert one == two


def test_cell_ids_of_nbformat_4_5_notebooks_are_kept_and_generated_ones_fixed(notebooks):
    _cfg, path = CONFIG_PAIRS[0]  # a Bespoke notebook, nbformat 4.5
    nb = notebooks[path]
    out = convert(nb, mode="batch")
    ids = [c.id for c in out.cells]
    assert ids[:2] == ["hpc-dl4mic-parameters", "hpc-dl4mic-setup"]
    assert ids[2:] == [c.id for c in nb.cells]
    assert "id" not in convert(read_notebook(MINI), mode="batch").cells[0]  # nbformat 4.0


# --------------------------------------------------------------------------- read / write


@pytest.mark.parametrize("content, message", [
    (b"{not json", "not a notebook: invalid JSON"),
    (b'{"cells": []}', "not a Jupyter notebook"),
    (b"[1, 2]", "not a Jupyter notebook"),
    (b'{"nbformat": 4, "nbformat_minor": 0, "metadata": {}, "cells": 5}', "not a"),
])
def test_read_notebook_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken.ipynb"
    path.write_bytes(content)
    with pytest.raises(NotebookError) as err:
        read_notebook(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value) and err.value.exit_code == 2


def test_read_notebook_missing_file(tmp_path):
    with pytest.raises(NotebookError, match=r"missing\.ipynb: cannot read notebook"):
        read_notebook(tmp_path / "missing.ipynb")


def test_write_notebook_is_atomic_and_validates(tmp_path):
    out = convert(read_notebook(MINI), mode="batch")
    target = tmp_path / "nb.ipynb"
    write_notebook(out, target)
    assert read_notebook(target).cells[0].metadata["tags"] == ["parameters"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb.ipynb"]
    broken = nbformat.from_dict(dict(out, cells=[{"cell_type": "code", "source": "x"}]))
    with pytest.raises(NotebookError, match="not valid nbformat v4"):
        write_notebook(broken, tmp_path / "bad.ipynb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb.ipynb"]


# --------------------------------------------------------------------------- batch mode


def run_cells(nb, ns: dict, *, injected: dict | None = None, history: bool = True) -> dict:
    """Execute a converted notebook's code cells in ``ns`` like papermill + IPython would."""
    if history:
        ns.setdefault("In", [""])
    for cell in code_cells(nb):
        if history:
            ns["In"].append(cell.source)
        exec(compile(python_of(cell.source), "<cell>", "exec"), ns)
        if injected is not None and "parameters" in cell.metadata.get("tags", []):
            source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in injected.items())
            if history:
                ns["In"].append(source)
            exec(source, ns)
    return ns


@pytest.fixture
def mini_run(tmp_path, monkeypatch):
    """Run the batch-converted mini notebook in-process; returns the two result files."""
    monkeypatch.setenv("HPC_DL4MIC_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    out = convert(read_notebook(MINI), mode="batch", data_dir=str(tmp_path / "data"),
                  results_dir=str(tmp_path / "results"))

    def run(injected=None, history=True):
        ns = run_cells(out, {"__name__": "__main__"}, injected=injected, history=history)
        summary = json.loads((Path(ns["full_model_path"]) / "training_summary.json").read_text())
        predictions = json.loads((Path(ns["Result_folder"]) / "predictions.json").read_text())
        return summary, predictions

    return out, run


def test_batch_parameters_cell_is_first_tagged_and_holds_every_name_once(mini_run):
    out, _run = mini_run
    first = out.cells[0]
    assert first.cell_type == "code" and first.metadata["tags"] == ["parameters"]
    names = re.findall(r"^(\w+) = ", first.source, re.M)
    specs = out.metadata["hpc_dl4mic"]["parameters"]
    assert names == list(dict.fromkeys(s["name"] for s in specs))
    assert "Use_the_current_trained_model = True  # boolean" in first.source  # first default
    # a raw field: its text when it is not a literal, else the value
    assert ("Data_type = 'Single_Images'  # raw (Python expression, text is evaluated): one of "
            "Single_Images, Stacks") in first.source
    assert "pooling_steps = 2  # raw" in first.source
    assert "Normalisation = 'percentile'  # dropdown: one of percentile, minmax or your own" \
        in first.source
    assert "patch_size = 64  # number" in first.source
    assert out.cells[1].metadata["tags"] == ["hpc-dl4mic-setup"]


def test_batch_param_lines_keep_injected_values_instead_of_overwriting_them(mini_run):
    out, _run = mini_run
    text = "\n".join(c.source for c in code_cells(out)[2:])
    assert ("number_of_epochs = _hpc_param('number_of_epochs') if 'number_of_epochs' in "
            "__hpc_dl4mic_injected__ else 10  # form field: {type:\"number\"}") in text
    assert ("  initial_learning_rate = _hpc_param('initial_learning_rate') if "
            "'initial_learning_rate' in __hpc_dl4mic_injected__ else 0.0003") in text
    assert "#Old_parameter = 3 #@param" in text  # commented-out fields stay as they were


def test_batch_defaults_apply_per_section_when_nothing_is_given(mini_run):
    _out, run = mini_run
    summary, predictions = run()
    assert summary["number_of_epochs"] == 10 and summary["Data_type"] == 1
    assert summary["initial_learning_rate"] == 0.0004
    assert predictions["section_5_used_current_model"] is True
    assert predictions["section_6_1_used_current_model"] is False  # its own default


def test_batch_given_value_applies_to_every_section(mini_run):
    _out, run = mini_run
    summary, predictions = run({"Use_the_current_trained_model": False, "number_of_epochs": 3,
                                "Data_type": "Stacks", "Weights_choice": "last",
                                "pooling_steps": "3"})
    assert predictions["section_5_used_current_model"] is False
    assert predictions["section_6_1_used_current_model"] is False
    assert summary["number_of_epochs"] == 3 and summary["total_steps"] == 3 * 4 * 4
    assert summary["Data_type"] == 2  # raw text evaluated in the notebook: Stacks == 2
    assert summary["pooling_steps"] == 3 and summary["Weights_choice"] == "last"


def test_batch_given_value_equal_to_the_first_default_still_applies_everywhere(mini_run):
    _out, run = mini_run
    _summary, predictions = run({"Use_the_current_trained_model": True})
    assert predictions["section_6_1_used_current_model"] is True  # found in IPython's history


def test_batch_without_ipython_history_falls_back_to_comparing_with_defaults(mini_run):
    _out, run = mini_run
    _summary, predictions = run({"Use_the_current_trained_model": True}, history=False)
    assert predictions["section_6_1_used_current_model"] is False  # documented limitation
    _summary, predictions = run({"Use_the_current_trained_model": False}, history=False)
    assert predictions["section_6_1_used_current_model"] is False
    assert predictions["section_5_used_current_model"] is False


def test_batch_injected_parameter_inside_an_if_block(mini_run):
    _out, run = mini_run
    summary, _p = run({"Use_Default_Advanced_Parameters": False, "initial_learning_rate": 0.01})
    assert summary["initial_learning_rate"] == 0.01


def test_batch_tuple_default_given_as_a_list_becomes_a_tuple():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## **3.1. Parameters**"),
                nbformat.v4.new_code_cell(
                    'patch_size = (128,128,8) #@param {type:"number"} # in pixels\n'
                    "shape = patch_size\n")]
    out = convert(nb, mode="batch")
    assert "patch_size = (128, 128, 8)  # number" in out.cells[0].source
    ns = run_cells(out, {"__name__": "__main__"}, injected={"patch_size": [64, 64, 4]})
    assert ns["shape"] == (64, 64, 4)
    assert run_cells(out, {"__name__": "__main__"})["shape"] == (128, 128, 8)


# --------------------------------------------------------------------------- interactive mode


class _Widget:
    def __init__(self, *children, **kw):
        self.children, self.kw = children, kw
        self.value = kw.get("value")


def fake_ipywidgets() -> types.ModuleType:
    mod = types.ModuleType("ipywidgets")
    for name in ("Text", "FloatText", "IntText", "Checkbox", "IntSlider", "FloatSlider",
                 "Dropdown", "Combobox", "DatePicker", "VBox", "Layout"):
        setattr(mod, name, type(name, (_Widget,), {}))
    return mod


def test_interactive_form_cells_precede_their_code_cells():
    out = convert(read_notebook(MINI), mode="interactive", sections_to_remove="1.2.")
    sources = [c.source for c in out.cells]
    assert "HPC_DL4MIC_FORMS = {" in sources[0]
    form = next(i for i, s in enumerate(sources) if s.endswith("hpc_form('3.1.')"))
    assert "Training_source = hpc_value('3.1.', 'Training_source')" in sources[form + 1]
    assert out.cells[form].metadata["tags"] == ["hpc-dl4mic-form"]
    assert "Use_the_current_trained_model = hpc_value('6.1.', " in "\n".join(sources)
    assert "/results/widget_values.json" in sources[form]


def test_interactive_widgets_by_type_and_values_saved_and_restored(tmp_path, monkeypatch):
    monkeypatch.setenv("HPC_DL4MIC_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ipywidgets", fake_ipywidgets())
    results = tmp_path / "results"
    out = convert(read_notebook(MINI), mode="interactive", data_dir=str(tmp_path / "data"),
                  results_dir=str(results))
    ns = run_cells(out, {"__name__": "__main__"})
    made = ns["_hpc_made"]["3.1."]
    kinds = {name: type(w).__name__ for name, w in made.items()}
    assert kinds == {
        "Training_source": "Text", "model_name": "Text", "model_path": "Text",
        "number_of_epochs": "FloatText", "patch_size": "FloatText", "batch_size": "IntText",
        "Use_Default_Advanced_Parameters": "Checkbox", "Multiply_dataset_by": "IntSlider",
        "flip_probability": "FloatSlider", "Weights_choice": "Dropdown",
        "Normalisation": "Combobox", "Data_type": "Dropdown", "pooling_steps": "Dropdown",
        "Acquisition_date": "DatePicker", "initial_learning_rate": "FloatText"}
    assert made["Multiply_dataset_by"].kw["max"] == 30
    assert made["Data_type"].kw["options"] == ["Single_Images", "Stacks"]
    assert made["Acquisition_date"].value == datetime.date(2024, 1, 31)
    assert ns["Data_type"] == 1 and ns["number_of_epochs"] == 10  # no click needed

    # the user edits two widgets and re-runs the code cell: the values are used and saved
    made["number_of_epochs"].value = 7.0
    made["Data_type"].value = "Stacks"
    cell = next(c for c in code_cells(out) if "hpc_value('3.1.', 'Training_source')" in c.source)
    exec(compile(python_of(cell.source), "<cell>", "exec"), ns)
    assert ns["number_of_epochs"] == 7 and isinstance(ns["number_of_epochs"], int)
    assert ns["Data_type"] == 2
    saved = json.loads((results / "widget_values.json").read_text())
    assert saved["3.1."] == {"number_of_epochs": 7, "Data_type": "Stacks"}

    # a new session restores the widgets from the saved values
    again = run_cells(out, {"__name__": "__main__"})
    assert again["_hpc_made"]["3.1."]["number_of_epochs"].value == 7
    assert again["number_of_epochs"] == 7 and again["Data_type"] == 2


def test_interactive_without_ipywidgets_uses_saved_or_default_values(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setenv("HPC_DL4MIC_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails
    results = tmp_path / "results"
    results.mkdir()
    (results / "widget_values.json").write_text(json.dumps({"3.1.": {"batch_size": 2}}))
    out = convert(read_notebook(MINI), mode="interactive", results_dir=str(results),
                  data_dir=str(tmp_path))
    ns = run_cells(out, {"__name__": "__main__"})
    assert ns["batch_size"] == 2 and ns["number_of_epochs"] == 10
    assert "ipywidgets is not installed" in capsys.readouterr().out
