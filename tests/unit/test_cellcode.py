"""The code converted notebooks run: the cell templates in notebooks/cellcode/, rendered and
executed on their own, and the offline-safe version check wrapper."""

from __future__ import annotations

import ast
import inspect
import os
import socket
import sys
from pathlib import Path

import pytest

from hpc_dl4mic.notebooks import cellcode
from hpc_dl4mic.notebooks.cells import (
    VALUES_FILE,
    batch_setup_source,
    interactive_setup_source,
)
from hpc_dl4mic.notebooks.convert import convert
from hpc_dl4mic.notebooks.params import ParamSpec
from hpc_dl4mic.notebooks.versioncheck import VERSION_CHECK_TIMEOUT, offline_safe_version_check

TEMPLATES = ("dirs", "online", "headless", "batch_setup", "interactive_setup")
CELLCODE = Path(cellcode.__file__).parent


def assigned(source: str) -> dict[str, object]:
    """Top-level ``NAME = literal`` assignments of ``source``."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def spec(name: str, type_: str, default: object, cell: int = 0, section: str = "3.1.",
         **kw: object) -> ParamSpec:
    return ParamSpec(name=name, type=type_, default=default, cell_index=cell, section=section,
                     **kw)


def run(source: str, ns: dict | None = None) -> dict:
    ns = {"__name__": "__main__"} if ns is None else ns
    exec(compile(source, "<cell>", "exec"), ns)
    return ns


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_are_files_of_the_package_and_render_to_valid_python(name):
    assert (CELLCODE / f"{name}.py").is_file()
    text = cellcode.template(name)
    ast.parse(text)
    assert "from ." not in text  # inline imports are expanded
    assert "{{" not in text and "}}" not in text


def test_template_defaults_are_the_converters_default_dirs():
    defaults = assigned(cellcode.template("dirs"))
    params = inspect.signature(convert).parameters
    assert defaults["HPC_DL4MIC_DATA_DIR"] == params["data_dir"].default == "/data"
    assert defaults["HPC_DL4MIC_RESULTS_DIR"] == params["results_dir"].default == "/results"


def test_interactive_template_names_the_values_file_the_form_cells_mention():
    assert repr(VALUES_FILE) in cellcode.template("interactive_setup")


def test_inlined_dirs_block_replaces_the_import_and_its_blank_lines():
    dirs = cellcode.template("dirs")
    online = cellcode.template("online")
    batch = cellcode.template("batch_setup")
    interactive = cellcode.template("interactive_setup")
    headless = cellcode.template("headless")
    reports = cellcode.template("reports")
    assert "# otherwise sets its own default, as in Colab.\n" + dirs + headless + online \
        + reports + "_HPC_DEFAULTS = {}" in batch
    assert "import json as _hpc_json\n" + dirs + online + "HPC_DL4MIC_VALUES_FILE = " \
        in interactive


def test_render_replaces_each_named_assignment_with_the_given_source():
    text = cellcode.render("dirs", {"HPC_DL4MIC_DATA_DIR": repr("/in 'x'"),
                                    "HPC_DL4MIC_RESULTS_DIR": repr("/out\\y")})
    values = assigned(text)
    assert values["HPC_DL4MIC_DATA_DIR"] == "/in 'x'"
    assert values["HPC_DL4MIC_RESULTS_DIR"] == "/out\\y"
    assert text.count("\n") == cellcode.template("dirs").count("\n")


def test_render_refuses_a_name_the_template_does_not_assign_once():
    with pytest.raises(ValueError, match="0 lines assign NOT_THERE"):
        cellcode.render("dirs", {"NOT_THERE": "1"})


# --------------------------------------------------------------------------- dirs block


def dirs_source(tmp_path: Path) -> str:
    return cellcode.render("dirs", {"HPC_DL4MIC_DATA_DIR": repr(str(tmp_path / "data")),
                                    "HPC_DL4MIC_RESULTS_DIR": repr(str(tmp_path / "results"))})


def test_dirs_block_creates_the_results_dir_and_stays_in_a_writable_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = run(dirs_source(tmp_path))
    assert (tmp_path / "results").is_dir() and Path.cwd() == tmp_path
    assert ns["HPC_DL4MIC_DATA_DIR"] == str(tmp_path / "data")


def test_dirs_block_moves_to_the_results_dir_from_a_read_only_cwd(tmp_path, monkeypatch):
    image = tmp_path / "image"
    image.mkdir()
    monkeypatch.chdir(image)
    real_access = os.access
    # root may write anywhere: make the folder read-only as os.access sees it
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == image
                        else real_access(path, mode))
    run(dirs_source(tmp_path))
    assert Path.cwd() == tmp_path / "results"


def test_dirs_block_survives_a_results_dir_it_cannot_create(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("")
    source = cellcode.render("dirs", {"HPC_DL4MIC_RESULTS_DIR": repr(str(tmp_path / "file/x"))})
    run(source)
    assert Path.cwd() == tmp_path


# --------------------------------------------------------------------------- batch set-up


BATCH_SPECS = [spec("epochs", "integer", 10), spec("patch", "string", (64, 64)),
               spec("mode", "raw", "Single_Images"), spec("epochs", "integer", 20, cell=1)]


def batch_ns(tmp_path: Path, given: dict, history: bool = True) -> dict:
    ns: dict = {"__name__": "__main__", "epochs": 10, "patch": (64, 64),
                "mode": "Single_Images", "Single_Images": 1}
    ns.update(given)
    if history:
        given_src = "".join(f"{k} = {v!r}\n" for k, v in given.items())
        # IPython's input history; its last entry is the running set-up cell itself
        ns["In"] = ["", "# hpc-dl4mic: parameters cell (generated)\n", given_src, "setup"]
    return run(batch_setup_source(BATCH_SPECS, str(tmp_path), str(tmp_path / "results")), ns)


def test_batch_setup_sees_values_assigned_after_the_parameters_cell(tmp_path, capsys):
    ns = batch_ns(tmp_path, {"epochs": 10})  # given, though equal to the default
    assert ns["__hpc_dl4mic_injected__"] == {"epochs": 10}
    assert ns["_HPC_DEFAULTS"] == {"epochs": 10, "patch": (64, 64), "mode": "Single_Images"}
    assert ns["_HPC_RAW"] == {"mode"}
    assert "parameters given: epochs" in capsys.readouterr().out


def test_batch_setup_without_history_compares_with_the_defaults(tmp_path):
    assert batch_ns(tmp_path, {"epochs": 10}, history=False)["__hpc_dl4mic_injected__"] == {}
    ns = batch_ns(tmp_path, {"epochs": 3}, history=False)
    assert ns["__hpc_dl4mic_injected__"] == {"epochs": 3}


def test_batch_param_turns_lists_into_tuples_and_evaluates_raw_text(tmp_path):
    ns = batch_ns(tmp_path, {"patch": [32, 32], "mode": "Single_Images"})
    assert ns["_hpc_param"]("patch") == (32, 32)
    assert ns["_hpc_param"]("mode") == 1


# --------------------------------------------------------------------------- interactive set-up


def interactive_ns(tmp_path: Path, monkeypatch) -> dict:
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails: no widgets
    specs = [spec("epochs", "number", 10), spec("name", "string", "m"),
             spec("expr", "raw", "1 + 1")]
    source = interactive_setup_source(specs, {0: "3.1."}, str(tmp_path),
                                      str(tmp_path / "results"))
    return run(source)


def test_interactive_setup_without_widgets_reads_saved_or_default_values(tmp_path, monkeypatch,
                                                                         capsys):
    ns = interactive_ns(tmp_path, monkeypatch)
    assert ns["HPC_DL4MIC_VALUES_FILE"] == str(tmp_path / "results" / VALUES_FILE)
    assert [s["name"] for s in ns["HPC_DL4MIC_FORMS"]["3.1."]] == ["epochs", "name", "expr"]
    assert ns["hpc_value"]("3.1.", "epochs") == 10
    assert ns["hpc_value"]("3.1.", "expr") == 2  # raw text is evaluated
    (tmp_path / "results" / VALUES_FILE).write_text('{"3.1.": {"name": "saved"}}')
    assert ns["hpc_value"]("3.1.", "name") == "saved"
    ns["hpc_form"]("3.1.")
    out = capsys.readouterr().out
    assert "ipywidgets is not installed" in out and "name = 'saved'" in out
    with pytest.raises(KeyError, match="no field 'nope' in form '3.1.'"):
        ns["hpc_value"]("3.1.", "nope")


def test_interactive_setup_ignores_a_broken_values_file(tmp_path, monkeypatch):
    ns = interactive_ns(tmp_path, monkeypatch)
    (tmp_path / "results" / VALUES_FILE).write_text("[not json")
    assert ns["hpc_value"]("3.1.", "name") == "m"


# --------------------------------------------------------------------------- version check


CHECK = """\
import urllib.request
def fetch():
    return 1
if True:
    Latest_notebook_version = fetch()  # https://raw.githubusercontent.com/x/Latest_Notebook_versions.csv
    print('latest', Latest_notebook_version, socket_timeout())
print('after')"""


def wrapped() -> str:
    src, n = offline_safe_version_check(CHECK)
    assert n == 1
    return src


def run_check(monkeypatch, capsys, offline: bool) -> str:
    if offline:
        monkeypatch.setenv("HPC_DL4MIC_OFFLINE", "1")
    else:
        monkeypatch.delenv("HPC_DL4MIC_OFFLINE", raising=False)
    before = socket.getdefaulttimeout()
    run(wrapped(), {"__name__": "__main__", "socket_timeout": socket.getdefaulttimeout})
    assert socket.getdefaulttimeout() == before  # restored
    return capsys.readouterr().out


def test_version_check_is_skipped_at_once_when_offline(monkeypatch, capsys):
    out = run_check(monkeypatch, capsys, offline=True)
    assert "version check skipped: HPC_DL4MIC_OFFLINE is set" in out
    assert "latest" not in out and "after" in out


def test_version_check_runs_with_a_socket_timeout_when_online(monkeypatch, capsys):
    out = run_check(monkeypatch, capsys, offline=False)
    assert f"latest 1 {float(VERSION_CHECK_TIMEOUT)}" in out
    assert "skipped" not in out and "after" in out


def test_version_check_failure_is_reported_not_raised(monkeypatch, capsys):
    monkeypatch.delenv("HPC_DL4MIC_OFFLINE", raising=False)
    src = wrapped().replace("return 1", "raise OSError('no network')")
    run(src, {"__name__": "__main__", "socket_timeout": socket.getdefaulttimeout})
    out = capsys.readouterr().out
    assert "version check skipped: no network" in out and "after" in out


def test_cell_without_a_version_url_is_left_alone():
    assert offline_safe_version_check("print('Latest_ nothing')") == ("print('Latest_ nothing')", 0)
