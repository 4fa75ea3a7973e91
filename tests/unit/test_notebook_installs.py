"""Packages a real notebook pip-installs when it runs, which its requirements file does not
list: found before the build and reported once, with the way out (hpc_dl4mic.extra_pip)."""

from __future__ import annotations

import json

import pytest
from fakehost import FakeHost
from seeddata import COLAB_NOTEBOOKS, REQUIREMENTS

from hpc_dl4mic.catalogue.config import Base, resolve_target
from hpc_dl4mic.images.build import BuildInputs, build, prepare_notebook_image
from hpc_dl4mic.images.builders import make_builder
from hpc_dl4mic.notebooks.installs import (
    install_specs,
    notebook_installs,
    unlisted_installs,
    unlisted_note,
)


def seed(name: str) -> dict:
    return json.loads((COLAB_NOTEBOOKS / name).read_text())


@pytest.mark.parametrize("args,specs", [
    (" -q pytorch-lightning==1.6.4 --quiet", ["pytorch-lightning==1.6.4"]),
    (" colorama; sys_platform=='win32'", ["colorama"]),  # `;` ends the shell command
    (' "numpy<2" > /dev/null', ["numpy<2"]),
    (" PTable # Nice tables", ["PTable"]),
    (" tifffile==2020.9.3 && echo ok", ["tifffile==2020.9.3"]),
    (" --index-url https://example.org/simple foo 'bar[extra]>=1'", ["foo", "bar[extra]>=1"]),
    (" foo>=1", ["foo"]),  # unquoted, the shell reads `>=1` as a redirection
    (" -r requirements.txt -e . git+https://github.com/x/y.git ./pkg $PKG", []),
    (" 'unbalanced", []),
])
def test_install_specs_keep_requirement_specifiers_only(args, specs):
    assert install_specs(args) == specs


def test_wgan_installs_pytorch_lightning_that_the_config_requirements_lack():
    nb = seed("WGAN_ZeroCostDL4Mic.ipynb")
    found = unlisted_installs(nb, (REQUIREMENTS / "SplineDist_2D_requirements_simple.txt")
                              .read_text())
    assert [(i.spec, i.section, i.name) for i in found] == [
        ("pytorch-lightning==1.6.4", "1.", "pytorch-lightning")]
    # the config's extra_pip (or the requirements) naming it, in any spelling, silences it
    assert "pytorch-lightning" not in [
        i.name for i in unlisted_installs(nb, "", extra=("pytorch_lightning==1.6.4",))]


def test_denoiseg_memory_profiler_is_found_in_its_removed_install_section():
    nb = seed("DenoiSeg_ZeroCostDL4Mic.ipynb")
    requirements = (REQUIREMENTS / "Denoiseg_requirements_simple.txt").read_text()
    names = [i.name for i in unlisted_installs(nb, requirements)]
    assert "memory-profiler" in names
    assert "memory-profiler" not in [i.name for i in unlisted_installs(
        nb, requirements, extra=("memory_profiler==0.61.0",))]


def test_a_notebook_whose_requirements_cover_its_installs_gets_no_note():
    nb = seed("StarDist_2D_ZeroCostDL4Mic.ipynb")
    requirements = (REQUIREMENTS / "StarDist_2D_requirements_simple.txt").read_text()
    assert notebook_installs(nb)  # it does pip-install in 1.1.
    assert unlisted_installs(nb, requirements) == []
    assert unlisted_note([], "r.txt") == ""


def test_the_note_is_one_line_naming_the_file_the_packages_and_the_way_out():
    nb = seed("WGAN_ZeroCostDL4Mic.ipynb")
    note = unlisted_note(unlisted_installs(nb, ""), "SplineDist_2D_requirements_simple.txt")
    assert "\n" not in note
    assert "pytorch-lightning==1.6.4 (1.)" in note
    assert "SplineDist_2D_requirements_simple.txt" in note and "hpc_dl4mic.extra_pip" in note


def test_prepare_notebook_image_carries_the_note_and_build_prints_it_once():
    inputs = prepare_notebook_image(
        resolve_target("WGAN_DL4Mic"), notebook=COLAB_NOTEBOOKS / "WGAN_ZeroCostDL4Mic.ipynb",
        requirements=REQUIREMENTS / "SplineDist_2D_requirements_simple.txt")
    (note,) = inputs.notes
    assert "pytorch-lightning==1.6.4" in note
    fixed = prepare_notebook_image(
        resolve_target("StarDist_2D_DL4Mic"),
        notebook=COLAB_NOTEBOOKS / "StarDist_2D_ZeroCostDL4Mic.ipynb",
        requirements=REQUIREMENTS / "StarDist_2D_requirements_simple.txt")
    assert fixed.notes == ()

    host = FakeHost(display="fake")
    host.makedirs("/c", 0o755)
    host.add_file("/c/X_DL4Mic-aaaaaaaaaaaaaaaa.json", json.dumps(
        {"name": "X_DL4Mic", "key": "a" * 64, "sha256": "0", "size": 1, "created": 0,
         "base": "debootstrap:bookworm"}).encode())
    host.add_file("/c/X_DL4Mic-aaaaaaaaaaaaaaaa.sif", b"S")
    noticed: list[str] = []
    cached = BuildInputs("X_DL4Mic", "Bootstrap: scratch\n", {}, Base("debootstrap", "bookworm"),
                         "a" * 64, notes=(note,))
    result = build(cached, host, "/c", builder=make_builder("here", fakeroot=False),
                   notice=noticed.append)
    assert result.cached and noticed == [note]  # a cached image too: the import still fails
