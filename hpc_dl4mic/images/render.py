"""Render one image spec as an Apptainer definition and as a Dockerfile (pure functions).

Python decides (base, Python interpreter, pins, files); the Jinja templates in
``definitions/`` hold the layout. Every value that reaches a shell line goes through the
``q`` filter (:func:`shlex.quote`); there is no autoescaping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import __version__
from ..catalogue.config import (
    DEBIAN_SYSTEM_PYTHON,
    Base,
    NotebookConfig,
    debian_choices,
    debian_suite_for,
)
from ..errors import ConfigError, InputError
from ..templates import file_word, render
from .layout import CA_CERTS, NOTEBOOKS, REQUIREMENTS, ca_cert_file, notebook_file

NOTEBOOKS_DIR = "/opt/hpc-dl4mic/notebooks"
REQUIREMENTS_PATH = "/opt/hpc-dl4mic/requirements.txt"
UBUNTU_SYSTEM_PYTHON = {"20.04": "3.8", "22.04": "3.10"}
VOLATILE_LABELS = ("org.hpc-dl4mic.tool-version", "org.hpc-dl4mic.image-key",
                   "org.hpc-dl4mic.base-image-key")


def jupyter_pins(python: str) -> tuple[str, ...]:
    """Pinned Jupyter stack for a Python version (DL4MicEverywhere's pins where they apply)."""
    minor = int(python.split(".")[1])
    if minor <= 6:
        return ("jupyterlab==3.2.9", "ipykernel==5.5.6", "ipywidgets==7.7.5", "papermill==2.3.4")
    if minor == 7:
        return ("jupyterlab==3.6.0", "ipykernel==6.16.2", "ipywidgets==8.1.0", "papermill==2.4.0")
    if minor >= 12:
        return ("jupyterlab==3.6.8", "ipykernel==6.29.5", "ipywidgets==8.1.0", "papermill==2.6.0")
    return ("jupyterlab==3.6.0", "ipykernel==6.29.5", "ipywidgets==8.1.0", "papermill==2.6.0")


def pip_tools(python: str) -> tuple[str, ...]:
    """Pinned pip, setuptools and wheel for Pythons before 3.10, whose Debian and Ubuntu venvs
    come with a pip from before 2022 (bullseye: pip 20.3.4, setuptools 44.1.1; focal: pip
    20.0.2). Those install an sdist with a legacy ``setup.py install`` in the venv itself, so
    an sdist in the requirements (wget, future) fails once a current setuptools plugin such as
    setuptools_scm is installed (``cannot import name 'sic' from 'setuptools'``). pip 24.0 is
    the last pip that accepts the non-standard version metadata of old pinned packages."""
    minor = int(python.split(".")[1])
    if minor >= 10:
        return ()
    if minor <= 6:
        return ("pip==21.3.1", "setuptools==59.6.0", "wheel==0.37.1")
    if minor == 7:
        return ("pip==24.0", "setuptools==68.0.0", "wheel==0.42.0")
    return ("pip==24.0", "setuptools==69.5.1", "wheel==0.43.0")


def pins_below(requirements: str, package: str, limit: tuple[int, ...]) -> bool:
    """Whether ``requirements`` pins ``package`` (``==``, ``<=``, ``<``, ``~=``) to a version
    before ``limit`` (``<LIMIT`` counts too)."""
    pin = re.compile(rf"^\s*{re.escape(package)}\s*(==|<=|<|~=)\s*(\d+(?:\.\d+)*)", re.I | re.M)
    width = len(limit)
    for op, version in pin.findall(requirements):
        parts = tuple(int(x) for x in version.split(".")[:width])
        parts += (0,) * (width - len(parts))
        if parts < limit or (op == "<" and parts <= limit):
            return True
    return False


MATPLOTLIB_INLINE_PIN = "matplotlib-inline<0.2"


def compat_pins(requirements: str) -> tuple[str, ...]:
    """Pins a notebook's own requirements need next to the Jupyter stack: ipykernel pulls the
    newest matplotlib-inline, whose 0.2 releases fail on ``import matplotlib.pyplot`` with a
    matplotlib older than 3.5.2 (``RcParams._get``; matplotlib-inline issue 54), which 12 of
    the ZeroCostDL4Mic requirements files pin (3.5.0, 2.2.3)."""
    if re.search(r"^\s*matplotlib[-_]inline\b", requirements, re.I | re.M):
        return ()
    return (MATPLOTLIB_INLINE_PIN,) if pins_below(requirements, "matplotlib", (3, 5, 2)) else ()


_OPENCV_GUI = re.compile(r"^\s*opencv-(?:contrib-)?python\s*(?:[=<>~!;\[]|$)", re.I | re.M)
OPENCV_APT = ("libgl1", "libglib2.0-0")


def compat_apt(requirements: str) -> tuple[str, ...]:
    """System libraries a notebook's requirements need that a minimal base lacks: the
    non-headless ``opencv-python`` wheels load ``libGL.so.1`` and glib's ``libgthread``
    (12 of the ZeroCostDL4Mic files pin one; DRMIME 2D failed on ``import cv2``); a pin of
    mpi4py 3 (Diffusion SMLM) is compiled, with an MPI compiler and the Python headers."""
    needed = OPENCV_APT if _OPENCV_GUI.search(requirements) else ()
    if _old_mpi4py(requirements):
        needed += MPI_APT
    return needed


PYTHON_DEV = "python3-dev"  # the headers of the image's Python (python3.X-dev on Ubuntu)
MPI_APT = ("build-essential", "libopenmpi-dev", PYTHON_DEV)
MPI4PY_BUILD_CONSTRAINTS = ("setuptools<69.4",)


def _old_mpi4py(requirements: str) -> bool:
    """A pin of mpi4py before 4.0: PyPI has no Linux wheels of those, so pip compiles it."""
    return pins_below(requirements, "mpi4py", (4,))


def build_constraints(requirements: str) -> tuple[str, ...]:
    """Constraints for pip's isolated builds of sdists in the requirements: mpi4py 3's build
    script calls distutils in ways setuptools 69.4 (a list from ``runtime_library_dir_option``,
    mpi4py issue 484) and 81 (``new_compiler(dry_run=)`` removed, issue 729) broke."""
    return MPI4PY_BUILD_CONSTRAINTS if _old_mpi4py(requirements) else ()


@dataclass(frozen=True)
class ImageSpec:
    """Everything that determines an image, resolved from a config and build options."""

    config: NotebookConfig
    base: Base
    python: str  # the interpreter version inside the image
    gpu: bool = True
    notebook_files: tuple[str, ...] = ()  # basenames, in the build context under notebooks/
    requirements: bool = True  # requirements.txt in the build context
    ca_certs: tuple[str, ...] = ()  # basenames, in the build context under ca-certs/
    extra_pip: tuple[str, ...] = ()
    compat_pip: tuple[str, ...] = ()  # compat_pins() of the requirements file
    compat_apt: tuple[str, ...] = ()  # compat_apt() of the requirements file
    build_constraints: tuple[str, ...] = ()  # build_constraints() of the requirements file
    ports: tuple[int, ...] = (8888,)
    tool_version: str = __version__
    labels_extra: tuple[tuple[str, str], ...] = field(default=())


def make_spec(config: NotebookConfig, *, base: Base | None = None, gpu: bool = True,
              notebook_files: tuple[str, ...] | None = None, ca_certs: tuple[str, ...] = (),
              accept_system_python: bool = False, base_suite: str | None = None,
              requirements_text: str | None = None) -> ImageSpec:
    """Resolve base and Python for ``config`` (errors name the config key or option to
    change). ``base_suite``: the Debian suite of a localimage base, when known (else a
    localimage base is taken to be bookworm's, as `hpc-dl4mic base` makes by default).
    ``requirements_text``: the requirements file, for its compatibility pins and packages."""
    base = base or config.hpc.base or (config.default_base() if gpu else
                                       Base("docker", f"ubuntu:{config.ubuntu_version}"))
    python = config.python_version
    if base.kind == "debootstrap" and not base.ref:
        suite = debian_suite_for(python)
        if suite is None:
            raise ConfigError(
                f"{config.path}: config.dl4miceverywhere.python_version: {python}: no Debian "
                f"suite has it (Debian bases have Python {debian_choices()}); use a docker:// "
                "CUDA base, or name a suite and accept its Python with --system-python")
        base = replace(base, ref=suite)
    if base.is_debian:
        suite = base.ref if base.kind == "debootstrap" else (base_suite or "bookworm")
        system = DEBIAN_SYSTEM_PYTHON.get(suite, "3.11")
        if python != system and not (accept_system_python or config.hpc.accept_system_python):
            suite = debian_suite_for(python)
            fits = (f"use --base debootstrap:{suite} (or a localimage: base built with "
                    f"`hpc-dl4mic base --suite {suite}`)" if suite else
                    f"no Debian suite has it (Debian bases have Python {debian_choices()}); "
                    "use a docker:// CUDA base")
            raise ConfigError(
                f"{config.path}: config.dl4miceverywhere.python_version: {python} is not "
                f"available on the Debian base {base} (it has Python {system}); {fits}, or "
                "accept the system Python with --system-python "
                "(config.hpc_dl4mic.accept_system_python: true)")
        python = system
    if notebook_files is None:
        notebook_files = notebook_names(config)
    ports = tuple(dict.fromkeys((8888, *config.hpc.extra_ports)))
    text = requirements_text or ""
    return ImageSpec(config=config, base=base, python=python, gpu=gpu,
                     notebook_files=tuple(notebook_files), ca_certs=tuple(ca_certs),
                     extra_pip=config.hpc.extra_pip, compat_pip=compat_pins(text),
                     compat_apt=compat_apt(text), build_constraints=build_constraints(text),
                     ports=ports)


def notebook_names(config: NotebookConfig) -> tuple[str, str]:
    """Names of the converted notebooks in the image: (interactive, batch)."""
    stem = Path(config.notebook_filename).stem
    return f"{stem}.ipynb", f"{stem}.batch.ipynb"


def labels(spec: ImageSpec) -> list[tuple[str, str]]:
    """Provenance labels (``org.hpc-dl4mic.*``)."""
    cfg = spec.config
    items = [
        ("org.hpc-dl4mic.notebook", cfg.name),
        ("org.hpc-dl4mic.title", cfg.title),
        ("org.hpc-dl4mic.notebook-version", cfg.notebook_version),
        ("org.hpc-dl4mic.notebook-url", cfg.notebook_url),
        ("org.hpc-dl4mic.config-sha256", cfg.sha256),
        ("org.hpc-dl4mic.python-version", spec.python),
        ("org.hpc-dl4mic.cuda-version", cfg.cuda_version),
        ("org.hpc-dl4mic.cudnn-version", cfg.cudnn_version),
        ("org.hpc-dl4mic.ubuntu-version", cfg.ubuntu_version),
        ("org.hpc-dl4mic.base", str(spec.base)),
        ("org.hpc-dl4mic.ports", ",".join(str(p) for p in spec.ports)),
        ("org.hpc-dl4mic.tool-version", spec.tool_version),
    ]
    if cfg.dl4miceverywhere_version:
        items.insert(4, ("org.hpc-dl4mic.dl4miceverywhere-version", cfg.dl4miceverywhere_version))
    return items + list(spec.labels_extra)


def _files(spec: ImageSpec) -> list[tuple[str, str]]:
    files = [(notebook_file(name), f"{NOTEBOOKS_DIR}/{name}") for name in spec.notebook_files]
    if spec.requirements:
        files.append((REQUIREMENTS, REQUIREMENTS_PATH))
    files += [(ca_cert_file(name), f"/usr/local/share/ca-certificates/{name}")
              for name in spec.ca_certs]
    return [(file_word(src), file_word(dst)) for src, dst in files]  # %files: shell-expanded


def _context(spec: ImageSpec) -> dict:
    docker_ubuntu = spec.base.kind == "docker"
    system_python = UBUNTU_SYSTEM_PYTHON.get(spec.config.ubuntu_version)
    deadsnakes = docker_ubuntu and spec.python != system_python
    if docker_ubuntu:
        python_packages = [f"python{spec.python}", f"python{spec.python}-venv",
                           f"python{spec.python}-dev"]
        apt = ["ca-certificates", "curl", "git"]
        apt += ["software-properties-common", "gpg-agent"] if deadsnakes else python_packages
        python_exe = f"python{spec.python}"
    elif spec.base.kind == "debootstrap":
        python_packages, apt, python_exe = [], ["python3", "python3-venv"], "python3"
    else:  # localimage: the base provides python3 (and usually /opt/venv)
        python_packages, apt, python_exe = [], [], "python3"
    python_dev = f"python{spec.python}-dev" if docker_ubuntu else PYTHON_DEV
    for name in spec.compat_apt:
        name = python_dev if name == PYTHON_DEV else name
        if name not in apt and name not in python_packages:
            apt.append(name)
    environment = [("LC_ALL", "C.UTF-8"), ("HPC_DL4MIC_NOTEBOOKS", NOTEBOOKS_DIR)]
    if spec.gpu and docker_ubuntu:
        environment.append(("XLA_FLAGS", "--xla_gpu_cuda_data_dir=/usr/local/cuda"))
    if spec.ca_certs:
        environment += [("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"),
                        ("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")]
    return {
        "config": spec.config, "base": spec.base, "gpu": spec.gpu, "labels": labels(spec),
        "files": _files(spec), "environment": environment, "ports": spec.ports,
        "notebooks_dir": NOTEBOOKS_DIR, "ca_certs": spec.ca_certs, "apt_packages": apt,
        "deadsnakes": deadsnakes, "python_packages": python_packages, "python_exe": python_exe,
        "jupyter_pins": jupyter_pins(spec.python), "pip_tools": pip_tools(spec.python),
        "requirements": spec.requirements,
        "extra_pip": spec.extra_pip, "compat_pip": spec.compat_pip,
        "build_constraints": spec.build_constraints,
        "tag": spec.config.name.lower(),
    }


def _render(template: str, context: dict) -> str:
    install = render("definitions/install.sh.j2", context).strip("\n")
    return render(f"definitions/{template}", context, install_script=install)


def render_definition(spec: ImageSpec) -> str:
    """The Apptainer definition file text."""
    if spec.config.hpc.dockerfile is not None:
        return definition_from_dockerfile(spec)
    return _render("apptainer.def.j2", _context(spec))


def render_dockerfile(spec: ImageSpec) -> str:
    """The Dockerfile text (GPU or CPU variant, by ``spec.gpu``)."""
    if spec.base.kind != "docker":
        raise InputError(f"a Dockerfile needs a docker:// base, not {spec.base}; "
                         "render the Apptainer definition instead")
    if spec.config.hpc.dockerfile is not None:
        return fill_dockerfile(spec)
    return _render("Dockerfile.j2", _context(spec))


def dockerfile_values(spec: ImageSpec) -> dict[str, str]:
    """Values for the build args DL4MicEverywhere-style Dockerfiles declare without defaults."""
    cfg = spec.config
    return {
        "BASE_IMAGE": spec.base.ref, "UBUNTU_VERSION": cfg.ubuntu_version,
        "CUDA_VERSION": cfg.cuda_version, "CUDNN_VERSION": cfg.cudnn_version,
        "PYTHON_VERSION": spec.python, "NOTEBOOK_NAME": cfg.notebook_filename,
        "REQUIREMENTS_NAME": REQUIREMENTS, "GPU_FLAG": "1" if spec.gpu else "0",
        "NOTEBOOK_VERSION": cfg.notebook_version,
    }


ARG_LINE = re.compile(r"^(\s*ARG\s+)([A-Za-z_][A-Za-z0-9_]*)\s*$", re.MULTILINE)


def fill_dockerfile(spec: ImageSpec) -> str:
    """A config's custom Dockerfile with every build arg given a concrete value."""
    path = spec.config.hpc.dockerfile
    assert path is not None
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{spec.config.path}: config.hpc_dl4mic.dockerfile: cannot read "
                          f"{path}: {exc.strerror}") from None
    values = dockerfile_values(spec)

    def fill_arg(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in values:
            raise ConfigError(f"{path}: ARG {name} has no default and hpc-dl4mic has no value "
                              f"for it; give it a default (known: {', '.join(sorted(values))})")
        return f"{match.group(1)}{name}={values[name]}"

    text = ARG_LINE.sub(fill_arg, text)
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
        text = re.sub(r"\$" + name + r"\b", lambda _m, v=value: v, text)
    return text


def definition_from_dockerfile(spec: ImageSpec) -> str:
    """Convert the filled-in custom Dockerfile with spython, adding our labels and notebooks."""
    import tempfile

    from spython.logger import bot
    from spython.main.parse.parsers import DockerParser
    from spython.main.parse.writers import SingularityWriter

    filled = fill_dockerfile(spec)
    source = spec.config.hpc.dockerfile
    saved_level, bot.level = bot.level, -5  # quiet: it warns about files it cannot see here
    try:
        with tempfile.TemporaryDirectory() as tmp:
            docker_path = Path(tmp) / "Dockerfile"
            docker_path.write_text(filled)
            recipe = DockerParser(str(docker_path)).recipe
        last = list(recipe.values())[-1]
        last.labels += [[f"{key} {value}"] for key, value in labels(spec)]
        last.files += [[src, dst] for src, dst in _files(spec)
                       if src.startswith((f"{NOTEBOOKS}/", f"{CA_CERTS}/"))]
        text = SingularityWriter(recipe).convert(runscript="", force=False)
    except (SystemExit, Exception) as exc:  # spython may sys.exit instead of raising
        raise ConfigError(f"{source}: spython could not convert it: {exc}") from None
    finally:
        bot.level = saved_level
    return text.rstrip("\n") + "\n"


def render_base_definition(suite: str = "bookworm", mirror: str = Base.mirror, *,
                           ca_certs: tuple[str, ...] = (),
                           labels_extra: tuple[tuple[str, str], ...] = ()) -> str:
    """The small Debian base (python3 venv + the Jupyter stack) that notebook images
    start from with ``Bootstrap: localimage`` when no registry is reachable."""
    python = DEBIAN_SYSTEM_PYTHON.get(suite, "3.11")
    return render("definitions/base-debian.def.j2", suite=suite, mirror=mirror,
                  ca_certs=ca_certs, jupyter_pins=jupyter_pins(python), labels_extra=labels_extra)


def keyed_definition(definition: str) -> str:
    """The definition without volatile labels: the part of it that goes into the cache key."""
    lines = [line for line in definition.splitlines()
             if not any(line.strip().startswith(label + " ") for label in VOLATILE_LABELS)]
    return "\n".join(lines) + "\n"


def with_tool_version(spec: ImageSpec, version: str) -> ImageSpec:
    """A copy of ``spec`` stamped with another tool version (tests, goldens)."""
    return replace(spec, tool_version=version)
