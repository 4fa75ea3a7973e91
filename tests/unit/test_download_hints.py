"""A failed download tells the user how to pass a local copy to the command that failed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from hpc_dl4mic.catalogue.config import resolve_target
from hpc_dl4mic.catalogue.sources import notebook_path
from hpc_dl4mic.cli import main
from hpc_dl4mic.errors import InputError
from hpc_dl4mic.images.build import build_many
from hpc_dl4mic.images.cache import ImageCache


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    def refuse(*_a, **_kw):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_build_download_failure_suggests_notebook_option():
    with pytest.raises(InputError) as info:
        notebook_path(resolve_target("CARE_2D_DL4Mic"), None)
    assert "--notebook PATH" in str(info.value)


def test_cache_build_download_failure_names_notebook_dir_not_notebook(tmp_path):
    outcome = build_many([resolve_target("CARE_2D_DL4Mic")], ImageCache(tmp_path / "c"))
    (name, error), = outcome.failed
    assert name == "CARE_2D_DL4Mic"
    assert "--notebook-dir DIR" in error and "CARE_2D_ZeroCostDL4Mic.ipynb" in error
    assert "--notebook PATH" not in error


def test_cache_build_with_a_folder_lacking_the_file_names_that_folder(tmp_path):
    empty = tmp_path / "notebooks"
    empty.mkdir()
    outcome = build_many([resolve_target("CARE_2D_DL4Mic")], ImageCache(tmp_path / "c"),
                         notebook_dir=empty)
    error = outcome.failed[0][1]
    assert f"--notebook-dir {empty}" in error and "--notebook PATH" not in error


def test_cache_build_missing_requirements_names_requirements_dir(tmp_path):
    from seeddata import COLAB_NOTEBOOKS

    outcome = build_many([resolve_target("CARE_2D_DL4Mic")], ImageCache(tmp_path / "c"),
                         notebook_dir=COLAB_NOTEBOOKS)
    error = outcome.failed[0][1]
    assert "--requirements-dir DIR" in error and "--requirements PATH" not in error


def test_cache_build_cli_reports_the_folder_options(tmp_path):
    result = CliRunner().invoke(main, ["cache", "build", "CARE_2D_DL4Mic", "--cache",
                                       str(tmp_path / "c"), "--json"])
    assert result.exit_code == 1
    error = json.loads(result.stdout)["failed"][0]["error"]
    assert "--notebook-dir" in error and "--notebook PATH" not in error
