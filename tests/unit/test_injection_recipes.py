"""Injection, property-based: hostile strings in every config field that reaches the
Apptainer definition or the Dockerfile (folder name, title, versions, URLs, extra_pip,
bases), and in parameter values that reach params.jsonl and the notebook's parameters.

Properties: the config is refused with one ConfigError/InputError line, or the recipes keep
their structure (the same sections / instructions, nothing a value holds starts a line of
its own, the heredoc ends once), their shell parts pass ``bash -n``, and labels, pip words
and parameter values read back exactly as given; papermill's injected parameters, run as
Python, give the values back and never run the canary."""

from __future__ import annotations

import copy
import json
import re
import shlex
import tempfile
import textwrap
from pathlib import Path

import nbformat
import yaml
from hostile import CANARY, bash_syntax_ok, canaries, hostile, word
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from seeddata import REPO

from hpc_dl4mic.batch.runs import manifest_text
from hpc_dl4mic.batch.task_runner import read_params
from hpc_dl4mic.catalogue.config import load_config
from hpc_dl4mic.cli.main import one_line
from hpc_dl4mic.errors import InputError
from hpc_dl4mic.images.render import labels, make_spec, render_definition, render_dockerfile
from hpc_dl4mic.notebooks.convert import convert
from hpc_dl4mic.notebooks.params import extract_params, validate_values

SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.filter_too_much])
CARE = REPO / "configs" / "ZeroCostDL4Mic_notebooks" / "CARE_2D_DL4Mic" / "configuration.yaml"
SECTIONS = ["labels", "files", "environment", "post", "runscript", "test", "help"]
INSTRUCTIONS = ("FROM", "LABEL", "ENV", "COPY", "RUN", "EXPOSE", "WORKDIR", "CMD")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
printable = hostile().map(lambda s: CONTROL.sub("", s))
maybe = st.one_of(st.none(), printable, printable, hostile())
_care = yaml.safe_load(CARE.read_text())  # the real config, less what no recipe reads
CARE_DOC = {"name": _care["name"], "config": _care["config"]}


def bases():
    return st.one_of(st.none(), st.none(), st.none(), hostile().map(lambda s: "docker://" + s),
                     st.sampled_from(["docker://ubuntu:22.04", "docker://nvidia/cuda:x"]),
                     hostile().map(lambda s: "localimage:/" + s),
                     hostile().map(lambda s: "debootstrap:bookworm@http://m/" + s))


def write_config(tmp: Path, folder: str, fields: dict) -> Path:
    doc = copy.deepcopy(CARE_DOC)
    block = doc["config"]["dl4miceverywhere"]
    for key in ("notebook_version", "dl4miceverywhere_version", "docker_hub_image",
                "description"):
        if fields.get(key) is not None:
            block[key] = fields[key]
    if fields.get("notebook") is not None:
        block["notebook_url"] = "https://example.org/nb/" + fields["notebook"]
    if fields.get("title") is not None:
        doc["name"] = fields["title"]
    hpc = {"extra_pip": fields["extra_pip"]} if fields.get("extra_pip") else {}
    if fields.get("base"):
        hpc.update(base=fields["base"], accept_system_python=True)
    if hpc:
        doc["config"]["hpc_dl4mic"] = hpc
    path = tmp / folder / "configuration.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def section_bodies(definition: str) -> tuple[list[str], dict[str, list[str]]]:
    """(header lines, section name -> body lines); lines break at \\n only, as in apptainer."""
    header: list[str] = []
    bodies: dict[str, list[str]] = {}
    current = None
    for line in definition.split("\n"):
        match = re.match(r"%(\w+)\s*$", line)
        if match:
            current = match.group(1)
            assert current not in bodies, f"section %{current} twice"
            bodies[current] = []
        elif current is None:
            header.append(line)
        else:
            bodies[current].append(line)
    return header, bodies


def check_definition(spec, definition: str, tmp: Path, extra_pip) -> None:
    header, bodies = section_bodies(definition)
    assert list(bodies) == SECTIONS
    assert all(re.match(r"(Bootstrap|From|OSVersion|MirrorURL|Include): ", line)
               for line in header if line), header
    found = {k: v.strip() for k, _, v in (line.strip().partition(" ")
                                          for line in bodies["labels"] if line.strip())}
    # apptainer trims a label's value (as this parse does): a folder "x " is labelled "x"
    assert found == {k: v.strip() for k, v in labels(spec)}
    assert all(len(line.split()) == 2 for line in bodies["files"] if line.strip())
    for name in ("environment", "post", "runscript", "test"):
        bash_syntax_ok(textwrap.dedent("\n".join(bodies[name])), tmp)
    pip_lines = [shlex.split(line) for line in bodies["post"]
                 if line.strip().startswith("/opt/venv/bin/python -m pip install")]
    assert (pip_lines[-1][4:] if extra_pip else []) == list(spec.extra_pip)
    assert bodies["help"][0].strip().startswith(spec.config.title)


def docker_words(value: str) -> str:
    """A double-quoted Dockerfile word read back as Docker reads it."""
    assert value.startswith('"') and value.endswith('"'), value
    return re.sub(r"\\(.)", r"\1", value[1:-1])


def check_dockerfile(spec, text: str, tmp: Path) -> None:
    lines = text.split("\n")
    start = lines.index("RUN <<'HPC_DL4MIC_INSTALL'")
    end = lines.index("HPC_DL4MIC_INSTALL")
    assert lines.count("HPC_DL4MIC_INSTALL") == 1
    bash_syntax_ok("\n".join(lines[start + 1:end]), tmp)
    outside = [ln for ln in lines[:start + 1] + lines[end + 1:] if ln and not ln.startswith("#")]
    assert all(ln.split(" ", 1)[0] in INSTRUCTIONS for ln in outside), outside
    found = [ln[len("LABEL "):].split("=", 1) for ln in outside if ln.startswith("LABEL ")]
    assert [(k, docker_words(v)) for k, v in found] == labels(spec)
    assert sum(ln.startswith("FROM ") for ln in outside) == 1


@settings(max_examples=500, **SETTINGS)
@given(folder=st.one_of(word().map(lambda s: CONTROL.sub("", s) or "_"), word()),
       title=maybe, notebook_version=maybe, dl4miceverywhere_version=maybe,
       docker_hub_image=maybe, description=maybe,
       notebook=st.one_of(st.none(), st.sampled_from(["a.ipynb", "My_nb-1.2+x.ipynb"]),
                          hostile().map(lambda s: s + ".ipynb")),
       extra_pip=st.lists(st.one_of(printable, hostile()), max_size=3), base=bases())
def test_config_values_reach_the_recipes_literally_or_are_refused(folder, **fields):
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            config = load_config(write_config(tmp, folder, fields))
            spec = make_spec(config)
            definition = render_definition(spec)
            dockerfile = render_dockerfile(spec) if spec.base.kind == "docker" else None
        except InputError as exc:  # ConfigError included
            line = one_line(str(exc))
            assert "\n" not in line and line
            event("refused")
            return
        event("rendered")
        check_definition(spec, definition, tmp, fields["extra_pip"])
        if dockerfile is not None:
            check_dockerfile(spec, dockerfile, tmp)
        assert not canaries(tmp)


# -- parameters: params.jsonl and papermill's injected cell ----------------------------------

NOTEBOOK = nbformat.v4.new_notebook(cells=[
    nbformat.v4.new_markdown_cell("# **1. Set up**"),
    nbformat.v4.new_code_cell("\n".join([
        "Training_source = '' #@param {type:\"string\"}",
        "model_name = 'm' #@param {type:\"string\"}",
        "Data_type = 'Single_Images' #@param ['Single_Images', 'Stacks'] {allow-input: true}",
        "number_of_epochs = 10 #@param {type:\"number\"}",
        "SEEN = (Training_source, model_name, Data_type, number_of_epochs)"]))])
SPECS = extract_params(NOTEBOOK)
BATCH = convert(nbformat.from_dict(json.loads(json.dumps(NOTEBOOK))), mode="batch",
                data_dir="/data", results_dir="/results")


def run_cells(nb, cwd: Path) -> dict:
    """The notebook's code cells run in one namespace, as its kernel would."""
    import os

    namespace: dict = {"__name__": "__main__"}
    old = os.getcwd()
    os.chdir(cwd)
    try:
        for cell in nb.cells:
            if cell.cell_type == "code":
                exec(compile(cell.source, "<cell>", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(old)
    return namespace


@settings(max_examples=150, **SETTINGS)
@given(source=hostile(), model=hostile(), data_type=hostile(), epochs=st.integers(1, 10**6))
def test_parameter_values_reach_the_notebook_literally(source, model, data_type, epochs):
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    values = validate_values(SPECS, {"Training_source": source, "model_name": model,
                                     "Data_type": data_type, "number_of_epochs": str(epochs)})
    assert values == {"Training_source": source, "model_name": model,
                      "Data_type": data_type, "number_of_epochs": epochs}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        manifest = tmp / "params.jsonl"
        manifest.write_text(manifest_text([{"index": 0, "params": {}},
                                           {"index": 1, "params": values}]))
        assert len(manifest.read_text().split("\n")) == 3  # one line per task
        params = read_params(str(manifest), 1)
        assert params == values
        path = tmp / "batch.ipynb"
        nbformat.write(BATCH, str(path))
        nb = parameterize_notebook(load_notebook_node(str(path)), params)  # as papermill does
        for cell in nb.cells:  # the set-up cell makes /data and /results: here, tmp's
            if cell.cell_type == "code":
                cell.source = cell.source.replace("'/data'", repr(str(tmp / "data"))).replace(
                    "'/results'", repr(str(tmp / "results")))
        namespace = run_cells(nb, tmp)
        assert namespace["SEEN"] == (source, model, data_type, epochs)
        assert not canaries(tmp) and not Path(CANARY).exists()
