"""Rendering Apptainer definitions and Dockerfiles (pure, golden-checked)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from seeddata import config_paths

from hpc_dl4mic.catalogue.config import load_config, parse_base, resolve_target
from hpc_dl4mic.errors import ConfigError, InputError
from hpc_dl4mic.images.render import (
    keyed_definition,
    make_spec,
    render_definition,
    render_dockerfile,
    with_tool_version,
)

DATA = Path(__file__).resolve().parent.parent / "data"
CUSTOM = DATA / "custom_dockerfile" / "configuration.yaml"


def spec_for(target, **kw):
    cfg = load_config(target) if isinstance(target, Path) else resolve_target(target)
    return with_tool_version(make_spec(cfg, **kw), "GOLDEN")


GOLDEN_CASES = {
    # Ubuntu 22.04 + CUDA 11.8, Python 3.10 = Ubuntu's own (no deadsnakes)
    "CARE_2D_DL4Mic": dict(target="CARE_2D_DL4Mic"),
    # Ubuntu 20.04 + CUDA 11.2, Python 3.9 from deadsnakes
    "bioimageio-pytorch": dict(target="bioimageio-pytorch"),
    # CUDA 12 + Python 3.11 from deadsnakes
    "U-Net_3D_DL4Mic": dict(target="U-Net_3D_DL4Mic"),
    # a user's config with a custom Dockerfile converted by spython, extra port and pip package
    "custom_dockerfile": dict(target=CUSTOM),
    # offline bases
    "StarDist_2D_DL4Mic-localimage": dict(target="StarDist_2D_DL4Mic",
                                          base=parse_base("localimage:/srv/base.sif")),
    "StarDist_2D_DL4Mic-debootstrap": dict(target="StarDist_2D_DL4Mic",
                                           base=parse_base("debootstrap:bookworm"),
                                           ca_certs=("site-ca.crt",)),
    # CPU variant
    "Noise2Void_2D_DL4Mic-cpu": dict(target="Noise2Void_2D_DL4Mic", gpu=False),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_rendered_definition_matches_golden(case, golden):
    kw = dict(GOLDEN_CASES[case])
    spec = spec_for(kw.pop("target"), **kw)
    golden(f"{case}.def", render_definition(spec))
    if spec.base.kind == "docker":
        golden(f"{case}.Dockerfile", render_dockerfile(spec))


@pytest.mark.parametrize("path", config_paths(), ids=lambda p: p.parent.name)
def test_every_config_renders_and_its_definition_parses_back_with_spython(path, tmp_path):
    from spython.main.parse.parsers import SingularityParser

    spec = make_spec(load_config(path))
    definition = render_definition(spec)
    dockerfile = render_dockerfile(spec)
    assert "${" not in dockerfile.replace("${HPC_DL4MIC", "")
    assert not re.search(r"^ARG\s+\w+\s*$", dockerfile, re.MULTILINE)
    def_path = tmp_path / "image.def"
    def_path.write_text(definition)
    recipe = SingularityParser(str(def_path)).recipe
    stage = list(recipe.values())[0]
    assert stage.fromHeader == spec.base.ref
    label_text = " ".join(" ".join(x) if isinstance(x, list) else x for x in stage.labels)
    assert f"org.hpc-dl4mic.notebook {spec.config.name}" in label_text
    files = [" ".join(f) if isinstance(f, list) else f for f in stage.files]
    assert any("/opt/hpc-dl4mic/notebooks/" in f for f in files)
    assert "jupyterlab==" in "\n".join(stage.install)


def test_dockerfile_has_no_unresolved_variables_for_custom_dockerfiles():
    text = render_dockerfile(make_spec(load_config(CUSTOM)))
    assert "${" not in text and "$PYTHON_VERSION" not in text
    assert "ARG PYTHON_VERSION=3.10" in text


def test_custom_dockerfile_arg_without_known_value_is_an_error(tmp_path):
    (tmp_path / "Dockerfile").write_text("ARG SECRET_THING\nFROM ubuntu:22.04\n")
    cfg_text = CUSTOM.read_text()
    (tmp_path / "configuration.yaml").write_text(cfg_text)
    with pytest.raises(ConfigError, match="ARG SECRET_THING has no default"):
        render_definition(make_spec(load_config(tmp_path / "configuration.yaml")))


def test_values_reaching_shell_lines_are_quoted(tmp_path):
    cfg_text = CUSTOM.read_text().replace("    dockerfile: Dockerfile\n", "").replace(
        "tensorboard==2.15.1", "'weird pkg; rm -rf / $(x)'")
    (tmp_path / "configuration.yaml").write_text(cfg_text)
    definition = render_definition(make_spec(load_config(tmp_path / "configuration.yaml")))
    assert "pip install 'weird pkg; rm -rf / $(x)'" in definition


def test_debian_base_refuses_another_python_unless_accepted():
    cfg = resolve_target("CARE_2D_DL4Mic")  # python 3.10
    with pytest.raises(ConfigError, match="--system-python"):
        make_spec(cfg, base=parse_base("debootstrap:bookworm"))
    spec = make_spec(cfg, base=parse_base("debootstrap:bookworm"), accept_system_python=True)
    assert spec.python == "3.11"


def test_dockerfile_needs_a_docker_base():
    spec = make_spec(resolve_target("StarDist_2D_DL4Mic"), base=parse_base("localimage:/b.sif"))
    with pytest.raises(InputError, match="docker:// base"):
        render_dockerfile(spec)


def test_rendering_is_pure_and_deterministic():
    spec = make_spec(resolve_target("CARE_2D_DL4Mic"))
    assert render_definition(spec) == render_definition(spec)


def test_keyed_definition_ignores_the_tool_version_only():
    cfg = resolve_target("CARE_2D_DL4Mic")
    a = render_definition(with_tool_version(make_spec(cfg), "1.0"))
    b = render_definition(with_tool_version(make_spec(cfg), "2.0"))
    assert a != b
    assert keyed_definition(a) == keyed_definition(b)
    c = render_definition(make_spec(cfg, ca_certs=("x.crt",)))
    assert keyed_definition(a) != keyed_definition(c)


def test_cpu_variant_uses_plain_ubuntu():
    spec = make_spec(resolve_target("CARE_2D_DL4Mic"), gpu=False)
    text = render_dockerfile(spec)
    assert "FROM ubuntu:22.04" in text
    assert "XLA_FLAGS" not in text


def test_requirements_pinning_an_old_matplotlib_get_a_matplotlib_inline_it_works_with():
    from seeddata import REQUIREMENTS

    from hpc_dl4mic.images.render import compat_pins

    old = [p.name for p in sorted(REQUIREMENTS.glob("*.txt"))
           if compat_pins(p.read_text(errors="replace"))]
    assert "DRMIME_2D_requirements_simple.txt" in old and len(old) == 12, old
    assert compat_pins("matplotlib==3.7.1\n") == ()
    assert compat_pins("matplotlib<3.5.2\n") == ("matplotlib-inline<0.2",)
    assert compat_pins("matplotlib==3.5.0\nmatplotlib-inline==0.1.7\n") == ()
    assert compat_pins("matplotlib-inline\n") == ()


def test_the_compatibility_pin_is_installed_after_the_requirements(tmp_path):
    from seeddata import COLAB_NOTEBOOKS, REQUIREMENTS

    from hpc_dl4mic.images.inputs import prepare_notebook_image

    config = resolve_target("DRMIME_2D_DL4Mic")
    inputs = prepare_notebook_image(
        config, notebook=COLAB_NOTEBOOKS / "DRMIME_2D_ZeroCostDL4Mic.ipynb",
        requirements=REQUIREMENTS / "DRMIME_2D_requirements_simple.txt", base="debootstrap")
    lines = inputs.definition.splitlines()
    req = next(i for i, ln in enumerate(lines) if "pip install -r" in ln)
    assert "pip install 'matplotlib-inline<0.2'" in lines[req + 2]


def test_requirements_with_opencv_python_get_the_libraries_it_loads():
    from seeddata import REQUIREMENTS

    from hpc_dl4mic.images.render import compat_apt

    gui = [p.name for p in sorted(REQUIREMENTS.glob("*.txt"))
           if compat_apt(p.read_text(errors="replace"))]
    assert "DRMIME_2D_requirements_simple.txt" in gui and len(gui) == 12, gui
    assert compat_apt("opencv-python-headless==3.4.18.65\n") == ()
    assert compat_apt("opencv-contrib-python\n") == ("libgl1", "libglib2.0-0")
    assert compat_apt("opencv-python-headless\nnumpy\n") == ()


def test_a_localimage_base_gets_the_apt_step_only_for_such_requirements(tmp_path):
    from dataclasses import replace

    from hpc_dl4mic.images.render import make_spec

    config = resolve_target("DRMIME_2D_DL4Mic")
    spec = make_spec(config, base=parse_base("debootstrap"))
    plain = render_definition(spec)
    with_gl = render_definition(replace(spec, compat_apt=("libgl1", "libglib2.0-0")))
    assert "libgl1" not in plain
    assert re.search(r"apt-get install -y --no-install-recommends python3 python3-venv "
                     r"libgl1 libglib2\.0-0", with_gl)


def test_pythons_before_3_10_get_a_current_pip_before_anything_is_installed():
    from hpc_dl4mic.images.render import pip_tools

    assert pip_tools("3.11") == () and pip_tools("3.13") == () and pip_tools("3.10") == ()
    assert pip_tools("3.9") == ("pip==24.0", "setuptools==69.5.1", "wheel==0.43.0")
    assert pip_tools("3.7") == ("pip==24.0", "setuptools==68.0.0", "wheel==0.42.0")
    assert pip_tools("3.6")[0] == "pip==21.3.1"
    bullseye = render_definition(make_spec(resolve_target("DRMIME_2D_DL4Mic"),
                                           base=parse_base("debootstrap")))
    lines = bullseye.splitlines()
    tools = next(i for i, ln in enumerate(lines) if "pip==24.0" in ln)
    assert tools < next(i for i, ln in enumerate(lines) if "jupyterlab==" in ln)
    assert tools < next(i for i, ln in enumerate(lines) if "pip install -r" in ln)
    bookworm = render_definition(make_spec(resolve_target("StarDist_2D_DL4Mic"),
                                           base=parse_base("debootstrap")))
    assert "pip==" not in bookworm and "setuptools==" not in bookworm


def test_requirements_pinning_mpi4py_3_get_an_mpi_compiler_and_a_setuptools_it_builds_with():
    from seeddata import COLAB_NOTEBOOKS, REQUIREMENTS

    from hpc_dl4mic.images.inputs import prepare_notebook_image
    from hpc_dl4mic.images.render import build_constraints, compat_apt

    mpi = [p.name for p in sorted(REQUIREMENTS.glob("*.txt"))
           if build_constraints(p.read_text(errors="replace"))]
    assert mpi == ["Diffusion_model_SMLM_requirements.txt"], mpi
    assert build_constraints("mpi4py==3.1.5\n") == ("setuptools<69.4",)
    assert build_constraints("mpi4py==4.1.1\n") == build_constraints("mpi4py\n") == ()
    assert "libopenmpi-dev" in compat_apt("mpi4py<4\n")
    assert "libopenmpi-dev" not in compat_apt("mpi4py>=4.0\nnumpy\n")
    inputs = prepare_notebook_image(
        resolve_target("Diffusion_SMLM_DL4Mic"),
        notebook=COLAB_NOTEBOOKS / "Diffusion_Model_SMLM_ZeroCostDL4Mic.ipynb",
        requirements=REQUIREMENTS / "Diffusion_model_SMLM_requirements.txt", base="debootstrap")
    text = inputs.definition
    assert re.search(r"apt-get install -y --no-install-recommends python3 python3-venv libgl1 "
                     r"libglib2\.0-0 build-essential libopenmpi-dev python3-dev\n", text)
    assert ("PIP_CONSTRAINT=/opt/hpc-dl4mic/build-constraints.txt /opt/venv/bin/python -m pip "
            "install -r /opt/hpc-dl4mic/requirements.txt") in text
    assert "printf '%s\\n' 'setuptools<69.4' > /opt/hpc-dl4mic/build-constraints.txt" in text


def test_an_ubuntu_base_gets_the_headers_of_its_own_python_for_a_compiled_requirement():
    from dataclasses import replace

    spec = make_spec(resolve_target("CARE_2D_DL4Mic"))
    text = render_dockerfile(replace(spec, compat_apt=("build-essential", "libopenmpi-dev",
                                                       "python3-dev")))
    assert "python3-dev" not in text
    assert f"python{spec.python}-dev" in text and "libopenmpi-dev" in text
