"""DL4MicEverywhere ``configuration.yaml`` files: load, validate, normalise, and the catalogue.

A config is a BioImage Model Zoo resource description whose ``config.dl4miceverywhere``
block says how to build the notebook's image. hpc-dl4mic's own optional settings live in
the sibling block ``config.hpc_dl4mic`` so the file stays valid for both tools.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from ..resources import data_dir

SECTION_TOKEN = re.compile(r"^\d+(\.\d+)*\.$")
VERSION3 = re.compile(r"^\d+\.\d+\.\d+$")
CUDNN_VERSION = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
PYTHON_VERSION = re.compile(r"^3\.\d{1,2}$")
UBUNTU_VERSIONS = ("20.04", "22.04")
# line breaks (also unicode ones) and other control characters
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$")
DEBIAN_SYSTEM_PYTHON = {"bookworm": "3.11", "trixie": "3.13", "bullseye": "3.9"}


def debian_suite_for(python: str) -> str | None:
    """The Debian suite whose python3 is ``python`` (``3.9`` -> bullseye), or None."""
    return next((suite for suite, version in DEBIAN_SYSTEM_PYTHON.items()
                 if version == python), None)


def debian_choices() -> str:
    """``3.9 (debootstrap:bullseye), 3.11 (debootstrap:bookworm), ...`` for messages."""
    pairs = sorted(DEBIAN_SYSTEM_PYTHON.items(),
                   key=lambda item: tuple(int(x) for x in item[1].split(".")))
    return ", ".join(f"{version} (debootstrap:{suite})" for suite, version in pairs)

# (cuda, cudnn, ubuntu) combinations used by the 32 real configs; NVIDIA publishes
# nvidia/cuda:<cuda>-cudnn<major>-devel-ubuntu<ubuntu> for each.
CUDA_COMBINATIONS: dict[tuple[str, str], str] = {
    ("11.2.2", "20.04"): "8.1.1.33",
    ("11.7.1", "22.04"): "8.5.0.96",
    ("11.8.0", "22.04"): "8.6.0.163",
    ("12.2.0", "22.04"): "8.9.6.50",
}

REQUIRED_KEYS = (
    "notebook_url", "requirements_url", "cuda_version", "cudnn_version", "ubuntu_version",
    "python_version", "sections_to_remove", "description", "notebook_version",
)
OPTIONAL_KEYS = ("dl4miceverywhere_version", "docker_hub_image")
HPC_KEYS = ("base", "extra_pip", "extra_ports", "dockerfile", "accept_system_python")


@dataclass(frozen=True)
class Base:
    """An image's start: ``docker://REF``, ``localimage:PATH`` or ``debootstrap:SUITE``."""

    kind: str  # "docker" | "localimage" | "debootstrap"
    ref: str  # image reference, SIF path, or Debian suite
    mirror: str = "http://deb.debian.org/debian"

    def __str__(self) -> str:
        if self.kind == "docker":
            return f"docker://{self.ref}"
        if self.kind == "debootstrap" and self.mirror != Base.mirror:
            return f"debootstrap:{self.ref}@{self.mirror}"
        return f"{self.kind}:{self.ref}"

    @property
    def is_debian(self) -> bool:
        """True when the base has only the distribution's python3 (no deadsnakes)."""
        return self.kind in ("localimage", "debootstrap")


@dataclass(frozen=True)
class HpcSettings:
    """The optional ``config.hpc_dl4mic`` block."""

    base: Base | None = None
    extra_pip: tuple[str, ...] = ()
    extra_ports: tuple[int, ...] = ()
    dockerfile: Path | None = None
    accept_system_python: bool = False


@dataclass(frozen=True)
class NotebookConfig:
    """A validated, normalised DL4MicEverywhere configuration."""

    path: Path
    name: str  # folder name, e.g. CARE_2D_DL4Mic
    group: str  # e.g. ZeroCostDL4Mic_notebooks ("" for a user's own file)
    title: str
    description: str
    notebook_url: str
    requirements_url: str
    cuda_version: str
    cudnn_version: str
    ubuntu_version: str
    python_version: str
    sections_to_remove: tuple[str, ...]
    notebook_version: str
    dl4miceverywhere_version: str | None
    docker_hub_image: str | None
    sha256: str
    hpc: HpcSettings = field(default_factory=HpcSettings)

    @property
    def notebook_filename(self) -> str:
        return self.notebook_url.rsplit("/", 1)[-1] or f"{self.name}.ipynb"

    @property
    def requirements_filename(self) -> str:
        return self.requirements_url.rsplit("/", 1)[-1] or "requirements.txt"

    @property
    def cudnn_major(self) -> str:
        return self.cudnn_version.split(".", 1)[0]

    def default_base(self) -> Base:
        """The CUDA base for this config from NVIDIA's registry."""
        tag = f"{self.cuda_version}-cudnn{self.cudnn_major}-devel-ubuntu{self.ubuntu_version}"
        return Base("docker", f"nvidia/cuda:{tag}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (``show --json``)."""
        return {
            "name": self.name, "group": self.group, "path": str(self.path), "title": self.title,
            "description": self.description, "notebook_url": self.notebook_url,
            "requirements_url": self.requirements_url, "cuda_version": self.cuda_version,
            "cudnn_version": self.cudnn_version, "ubuntu_version": self.ubuntu_version,
            "python_version": self.python_version,
            "sections_to_remove": list(self.sections_to_remove),
            "notebook_version": self.notebook_version,
            "dl4miceverywhere_version": self.dl4miceverywhere_version,
            "docker_hub_image": self.docker_hub_image, "sha256": self.sha256,
            "base": str(self.hpc.base or self.default_base()),
            "hpc_dl4mic": {
                "base": str(self.hpc.base) if self.hpc.base else None,
                "extra_pip": list(self.hpc.extra_pip), "extra_ports": list(self.hpc.extra_ports),
                "dockerfile": str(self.hpc.dockerfile) if self.hpc.dockerfile else None,
                "accept_system_python": self.hpc.accept_system_python,
            },
        }


def parse_base(text: str, *, where: str = "--base") -> Base:
    """Parse ``docker://REF``, ``localimage:PATH`` or ``debootstrap:SUITE[@MIRROR]``."""
    text = text.strip()
    if CONTROL.search(text):
        raise InputError(f"{where}: {text!r}: line breaks and other control characters are "
                         "not allowed")
    if text.startswith("docker://") and len(text) > len("docker://"):
        ref = text[len("docker://"):]
        if not IMAGE_REF.match(ref):
            raise InputError(f"{where}: {text!r}: an image reference has only letters, "
                             "digits and ._/:@+-")
        return Base("docker", ref)
    if text.startswith("localimage:") and len(text) > len("localimage:"):
        return Base("localimage", str(Path(text[len("localimage:"):]).expanduser()))
    if text == "debootstrap" or text.startswith("debootstrap:"):
        suite, _, mirror = text[len("debootstrap:"):].partition("@")
        if suite == "":  # the suite whose python3 is the config's python_version
            return Base("debootstrap", "", mirror or Base.mirror)
        if not re.fullmatch(r"[a-z]+", suite):
            raise InputError(f"{where}: Debian suite {suite!r} is not a suite name like 'bookworm'")
        if mirror and not re.fullmatch(r"(https?|file)://[^\s\"'\\]+", mirror):
            raise InputError(f"{where}: mirror {mirror!r} is not an http(s):// or file:// URL "
                             "(no spaces or quotes)")
        return Base("debootstrap", suite, mirror or Base.mirror)
    raise InputError(
        f"{where}: {text!r} is not a base; allowed: docker://IMAGE, localimage:PATH.sif, "
        "debootstrap:SUITE[@MIRROR], debootstrap (the suite with the config's Python)"
    )


def _fail(path: Path, key: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {message}")


def _as_version(path: Path, key: str, value: Any, pattern: re.Pattern[str], example: str,
                *, allow_float: bool = True) -> str:
    if isinstance(value, bool) or value is None:
        raise _fail(path, key, f"expected a version like '{example}', got {value!r}")
    if isinstance(value, float) and not allow_float:
        raise _fail(path, key, f"expected a quoted version like '{example}' "
                               f"(unquoted YAML {value!r} is a number and loses digits)")
    text = str(value).strip()
    if not pattern.match(text):
        raise _fail(path, key, f"expected a version like '{example}', got {value!r}")
    return text


def _sections(path: Path, value: Any) -> tuple[str, ...]:
    key = "config.dl4miceverywhere.sections_to_remove"
    if value is None:
        return ()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value) + ("" if str(value).endswith(".") else ".")
    if isinstance(value, list):
        tokens = [str(v) for v in value]
    elif isinstance(value, str):
        tokens = value.split()
    else:
        raise _fail(path, key, f"expected space-separated section tokens like '1.1. 2.', "
                               f"got {type(value).__name__}")
    for token in tokens:
        if not SECTION_TOKEN.match(token):
            raise _fail(path, key, f"section {token!r} is not in 'X.' or 'X.Y.' form "
                                   "(digits separated by dots, ending with a dot)")
    return tuple(tokens)


def _string(path: Path, key: str, value: Any, *, url: bool = False) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, key, f"expected a non-empty string, got {value!r}")
    if url and not re.match(r"^(https?|file)://[^\s\"'\\]+$", value.strip()):
        raise _fail(path, key, f"expected an http(s):// URL (no spaces or quotes), got {value!r}")
    if url and CONTROL.search(value.strip()):
        raise _fail(path, key, f"{value!r}: control characters are not allowed in a URL")
    return value.strip()


def _hpc_settings(path: Path, block: Any) -> HpcSettings:
    if block is None:
        return HpcSettings()
    if not isinstance(block, dict):
        raise _fail(path, "config.hpc_dl4mic", f"expected a mapping, got {type(block).__name__}")
    unknown = sorted(set(block) - set(HPC_KEYS))
    if unknown:
        raise _fail(path, f"config.hpc_dl4mic.{unknown[0]}",
                    f"unknown key; allowed: {', '.join(HPC_KEYS)}")
    base = None
    if block.get("base") is not None:
        if not isinstance(block["base"], str):
            raise _fail(path, "config.hpc_dl4mic.base", "expected a string")
        try:
            base = parse_base(block["base"], where="config.hpc_dl4mic.base")
        except InputError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if base.kind == "localimage" and not Path(base.ref).is_absolute():
            base = Base("localimage", str((path.parent / base.ref).resolve()))
    extra_pip = block.get("extra_pip") or []
    if not isinstance(extra_pip, list) or not all(isinstance(p, str) and p.strip()
                                                  for p in extra_pip):
        raise _fail(path, "config.hpc_dl4mic.extra_pip",
                    "expected a list of pip requirement strings")
    for req in extra_pip:
        if CONTROL.search(req):
            raise _fail(path, "config.hpc_dl4mic.extra_pip",
                        f"{req!r}: line breaks and other control characters are not allowed")
        if req.strip().startswith("-"):
            raise _fail(path, "config.hpc_dl4mic.extra_pip",
                        f"{req!r}: options are not allowed, only requirement specifiers")
    ports = block.get("extra_ports") or []
    if not isinstance(ports, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports):
        raise _fail(path, "config.hpc_dl4mic.extra_ports",
                    "expected a list of port numbers 1-65535")
    dockerfile = None
    if block.get("dockerfile") is not None:
        if not isinstance(block["dockerfile"], str):
            raise _fail(path, "config.hpc_dl4mic.dockerfile", "expected a path string")
        dockerfile = (path.parent / block["dockerfile"]).resolve()
        if not dockerfile.is_file():
            raise _fail(path, "config.hpc_dl4mic.dockerfile", f"file not found: {dockerfile}")
    accept = block.get("accept_system_python", False)
    if not isinstance(accept, bool):
        raise _fail(path, "config.hpc_dl4mic.accept_system_python", "expected true or false")
    return HpcSettings(base, tuple(s.strip() for s in extra_pip), tuple(ports), dockerfile, accept)


def parse_config(text: str, path: Path, *, name: str | None = None,
                 group: str = "") -> NotebookConfig:
    """Validate and normalise the YAML ``text`` of a configuration file at ``path``."""
    from ..yamlio import load_yaml

    doc = load_yaml(text, path, error=ConfigError)
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level, "
                          f"got {type(doc).__name__}")
    config = doc.get("config")
    if not isinstance(config, dict):
        raise _fail(path, "config", "missing or not a mapping; a DL4MicEverywhere file has "
                                    "config.dl4miceverywhere")
    block = config.get("dl4miceverywhere")
    if not isinstance(block, dict):
        raise _fail(path, "config.dl4miceverywhere", "missing or not a mapping")
    prefix = "config.dl4miceverywhere."
    # keys a newer DL4MicEverywhere may add are ignored; near-misses of known keys are typos
    # (checked first: a misspelt required key is reported as the typo, not as missing)
    for key in sorted(set(block) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS), key=str):
        close = difflib.get_close_matches(str(key), REQUIRED_KEYS + OPTIONAL_KEYS, n=1,
                                          cutoff=0.8)
        if close:
            raise _fail(path, prefix + str(key), f"unknown key; did you mean {close[0]}?")
    for key in REQUIRED_KEYS:
        if key not in block:
            raise _fail(path, prefix + key, "required key is missing")

    cuda = _as_version(path, prefix + "cuda_version", block["cuda_version"], VERSION3, "11.8.0",
                       allow_float=False)
    cudnn = _as_version(path, prefix + "cudnn_version", block["cudnn_version"], CUDNN_VERSION,
                        "8.6.0.163", allow_float=False)
    ubuntu = str(block["ubuntu_version"]).strip()
    if isinstance(block["ubuntu_version"], bool) or ubuntu not in UBUNTU_VERSIONS:
        raise _fail(path, prefix + "ubuntu_version",
                    f"{block['ubuntu_version']!r} is not supported; allowed: "
                    f"{', '.join(repr(u) for u in UBUNTU_VERSIONS)}")
    python = _as_version(path, prefix + "python_version", block["python_version"],
                         PYTHON_VERSION, "3.10", allow_float=False)
    notebook_version = block["notebook_version"]
    if isinstance(notebook_version, bool) or not isinstance(notebook_version, (str, int, float)) \
            or not str(notebook_version).strip():
        raise _fail(path, prefix + "notebook_version",
                    f"expected a version string, got {notebook_version!r}")
    optional: dict[str, str | None] = {}
    for key in OPTIONAL_KEYS:
        value = block.get(key)
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (str, int, float))):
            raise _fail(path, prefix + key, f"expected a string, got {value!r}")
        optional[key] = None if value is None else str(value).strip()
        if value is not None and CONTROL.search(str(value)):
            raise _fail(path, prefix + key, f"{value!r}: line breaks and other control "
                                            "characters are not allowed")
    if CONTROL.search(str(notebook_version)):
        raise _fail(path, prefix + "notebook_version",
                    f"{notebook_version!r}: line breaks and other control characters are not "
                    "allowed")

    hpc = _hpc_settings(path, config.get("hpc_dl4mic"))
    if hpc.base is None and CUDA_COMBINATIONS.get((cuda, ubuntu)) != cudnn:
        known = "; ".join(f"CUDA {c} + cuDNN {d} on Ubuntu {u}"
                          for (c, u), d in sorted(CUDA_COMBINATIONS.items()))
        raise _fail(path, prefix + "cuda_version",
                    f"CUDA {cuda} + cuDNN {cudnn} on Ubuntu {ubuntu} is not a known "
                    f"combination (known: {known}); name an image in config.hpc_dl4mic.base")

    folder = path.parent.name
    if CONTROL.search(name or folder):
        raise ConfigError(f"{path}: the folder name {folder!r} has a line break or another "
                          "control character; rename the folder")
    title = (doc.get("name").strip() if isinstance(doc.get("name"), str) else "") or folder
    if CONTROL.search(title):
        raise _fail(path, "name", f"{title!r}: line breaks and other control characters are "
                                  "not allowed (the title is an image label)")

    description = _string(path, prefix + "description", block["description"])
    notebook_url = _string(path, prefix + "notebook_url", block["notebook_url"], url=True)
    if not re.fullmatch(r"[A-Za-z0-9_.+-]*", notebook_url.rsplit("/", 1)[-1]):
        raise _fail(path, prefix + "notebook_url",
                    f"{notebook_url!r}: the notebook's file name (the URL's last part) may "
                    "have only letters, digits and _.+- (it becomes a file of the image)")
    return NotebookConfig(
        path=path, name=name or folder, group=group, title=title, description=description,
        notebook_url=notebook_url,
        requirements_url=_string(path, prefix + "requirements_url", block["requirements_url"],
                                 url=True),
        cuda_version=cuda, cudnn_version=cudnn, ubuntu_version=ubuntu, python_version=python,
        sections_to_remove=_sections(path, block["sections_to_remove"]),
        notebook_version=str(notebook_version).strip(),
        dl4miceverywhere_version=optional["dl4miceverywhere_version"],
        docker_hub_image=optional["docker_hub_image"],
        sha256=hashlib.sha256(text.encode()).hexdigest(), hpc=hpc,
    )


def load_config(path: Path, *, name: str | None = None, group: str = "") -> NotebookConfig:
    """Read and validate one configuration file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_config(text, path.resolve(), name=name, group=group)


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    group: str
    path: Path


def catalogue() -> list[CatalogueEntry]:
    """The configs shipped with hpc-dl4mic, sorted by name (case-insensitive)."""
    root = data_dir("configs")
    entries = [CatalogueEntry(p.parent.name, p.parent.parent.name, p)
               for p in root.glob("*/*/configuration.yaml")]
    return sorted(entries, key=lambda e: e.name.lower())


def find_entry(name: str) -> CatalogueEntry:
    """A catalogue entry by name: case-insensitive, exact or a unique prefix."""
    entries = catalogue()
    wanted = name.lower()
    exact = [e for e in entries if e.name.lower() == wanted]
    if exact:
        return exact[0]
    matches = [e for e in entries if e.name.lower().startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InputError(f"notebook name {name!r} is ambiguous: "
                         f"{', '.join(e.name for e in matches)}")
    close = difflib.get_close_matches(name, [e.name for e in entries], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `hpc-dl4mic list`"
    raise InputError(f"no notebook named {name!r} in the catalogue and no such file{hint}")


def resolve_target(target: str) -> NotebookConfig:
    """A catalogue name (case-insensitive, unique prefix) or a path to a configuration.yaml."""
    path = Path(target).expanduser()
    if path.is_dir() and (path / "configuration.yaml").is_file():
        path = path / "configuration.yaml"
    if path.is_file():
        return load_config(path)
    if any(sep in target for sep in ("/", "\\")) or target.endswith((".yaml", ".yml")):
        raise InputError(f"{target}: no such configuration file")
    entry = find_entry(target)
    return load_config(entry.path, name=entry.name, group=entry.group)
