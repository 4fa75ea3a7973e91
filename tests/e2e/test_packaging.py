"""A non-editable `pip install .` in a fresh venv ships the configs and templates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("pkg")
    venv.create(root / "venv", with_pip=True)
    py = root / "venv" / "bin" / "python"
    # the wheel itself without dependencies, plus the few `list`/`render` import
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", str(REPO)], check=True,
                   cwd=root)
    subprocess.run([py, "-m", "pip", "install", "-q", "click", "pyyaml", "jinja2"], check=True)
    return root, root / "venv" / "bin" / "hpc-dl4mic"


def test_installed_package_finds_its_configs_from_another_folder(installed):
    root, exe = installed
    out = subprocess.run([exe, "list", "--json"], cwd=root, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": ""})
    assert len(json.loads(out.stdout)) == 32
    show = json.loads(subprocess.run([exe, "show", "care_2d", "--json"], cwd=root, check=True,
                                     capture_output=True, text=True).stdout)
    assert "site-packages" in show["path"]


def test_installed_package_renders_with_its_templates(installed):
    root, exe = installed
    subprocess.run([exe, "render", "CARE_2D_DL4Mic", "-o", str(root / "ctx")], cwd=root,
                   check=True, capture_output=True)
    assert "Bootstrap: docker" in (root / "ctx" / "CARE_2D_DL4Mic.def").read_text()
    assert (root / "ctx" / "Dockerfile").is_file()


def test_installed_package_is_not_the_source_tree(installed):
    root, _ = installed
    py = root / "venv" / "bin" / "python"
    out = subprocess.run([py, "-c", "import hpc_dl4mic, sys; print(hpc_dl4mic.__file__)"],
                         cwd=root, capture_output=True, text=True, check=True)
    assert str(REPO) not in out.stdout
    assert sys.prefix not in out.stdout


def test_installed_package_ships_the_cell_code_of_converted_notebooks(installed):
    root, _ = installed
    py = root / "venv" / "bin" / "python"
    code = ("from hpc_dl4mic.notebooks import cellcode; import sys; "
            "sys.stdout.write(cellcode.__file__ + '\\n' + cellcode.template('interactive_setup'))")
    out = subprocess.run([py, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": ""}).stdout
    where, text = out.split("\n", 1)
    assert "site-packages" in where
    assert "HPC_DL4MIC_RESULTS_DIR = '/results'" in text and "def hpc_value(form, name):" in text
