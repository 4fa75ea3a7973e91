"""A build context folder: the recipes plus the files they copy into the image.

Layout (relative paths, so the recipes are the same wherever the folder is)::

    DIR/<name>.def            Apptainer definition
    DIR/Dockerfile            Dockerfile (docker:// bases)
    DIR/notebooks/*.ipynb     the notebooks, copied to /opt/hpc-dl4mic/notebooks/
    DIR/requirements.txt      the requirements file
    DIR/ca-certs/*.crt        site CA certificates
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..catalogue.config import NotebookConfig
from ..errors import InputError
from ..fsutil import atomic_copy, atomic_write
from .render import ImageSpec, notebook_names, render_definition, render_dockerfile


def ca_cert_files(ca_dir: Path | None) -> list[Path]:
    """The ``*.crt``/``*.pem`` files of a CA folder (or a single file)."""
    if ca_dir is None:
        return []
    ca_dir = Path(ca_dir).expanduser()
    if ca_dir.is_file():
        files = [ca_dir]
    elif ca_dir.is_dir():
        files = sorted(p for p in ca_dir.iterdir() if p.suffix in (".crt", ".pem") and p.is_file())
    else:
        raise InputError(f"--ca-certs {ca_dir}: no such file or folder")
    if not files:
        raise InputError(f"--ca-certs {ca_dir}: no .crt or .pem files in it")
    return files


def ca_cert_names(files: list[Path]) -> tuple[str, ...]:
    """Names the certificates get in the image (update-ca-certificates wants ``.crt``)."""
    return tuple(f.stem + ".crt" for f in files)


def definition_name(config: NotebookConfig) -> str:
    return f"{config.name}.def"


@dataclass
class Context:
    """What was written into a build context folder."""

    directory: Path
    written: list[Path] = field(default_factory=list)


def _refuse_overwriting(targets: list[Path], inputs: Sequence[tuple[str, Path]],
                        directory: Path) -> None:
    """InputError when a file about to be written is one of the inputs (same file)."""
    for target in targets:
        if not target.exists():
            continue
        for option, source in inputs:
            try:
                same = os.path.samefile(target, source)
            except OSError:
                same = False
            if same:
                raise InputError(f"-o {directory}: would overwrite the input {source} "
                                 f"({option}) with {target}; choose another -o folder or "
                                 f"move the input out of it")


def write_context(spec: ImageSpec, directory: Path, *, docker: bool = True,
                  apptainer: bool = True, notebooks: dict[str, bytes] | None = None,
                  requirements: Path | None = None, ca_certs: list[Path] = (),
                  inputs: Sequence[tuple[str, Path]] = ()) -> Context:
    """Write the recipes and the given input files into ``directory`` (each file atomically).

    ``inputs`` (option, path) are never overwritten: writing over one is an InputError,
    raised before anything is written."""
    directory = Path(directory)
    ctx = Context(directory)
    # render everything first: a bad input must not leave half a context behind
    texts: dict[str, str] = {}
    if apptainer:
        texts[definition_name(spec.config)] = render_definition(spec)
    if docker:
        texts["Dockerfile"] = render_dockerfile(spec)
    certs = list(zip(ca_certs, ca_cert_names(list(ca_certs))))
    _refuse_overwriting(
        [directory / "notebooks" / name for name in (notebooks or {})]
        + ([directory / "requirements.txt"] if requirements is not None else [])
        + [directory / "ca-certs" / name for _src, name in certs]
        + [directory / name for name in texts], inputs, directory)
    for name, data in (notebooks or {}).items():
        ctx.written.append(atomic_write(directory / "notebooks" / name, data))
    if requirements is not None:
        ctx.written.append(atomic_copy(requirements, directory / "requirements.txt"))
    for src, name in certs:
        ctx.written.append(atomic_copy(src, directory / "ca-certs" / name))
    for name, text in texts.items():
        ctx.written.append(atomic_write(directory / name, text))
    return ctx


# Stamped into converted notebooks instead of the tool version, so that a release which
# leaves conversion alone keeps image keys (and admins' shared caches) valid. Bump it when
# the conversion rules change.
CONVERSION_STAMP = "hpc-dl4mic conversion 1"


def image_notebooks(config: NotebookConfig, source: Path) -> dict[str, bytes]:
    """The converted notebooks that go into the image, by name (interactive, batch).

    Conversion is deterministic, so its output is memoised in the XDG cache under a hash of
    the source bytes, the options and the converter's own code: a cache hit of ``build``
    does not even import nbformat.
    """
    import hashlib
    import json

    from ..fsutil import cache_home
    from ..notebooks import convert as notebook_module

    source = Path(source)
    data = source.read_bytes()
    common = dict(sections_to_remove=list(config.sections_to_remove),
                  source_name=config.notebook_filename, config_name=config.name,
                  source_sha256=hashlib.sha256(data).hexdigest(),
                  tool_version=CONVERSION_STAMP)
    converter = hashlib.sha256(Path(notebook_module.__file__).read_bytes()).hexdigest()
    memo = cache_home() / "converted" / hashlib.sha256(
        json.dumps({**common, "converter": converter}, sort_keys=True).encode()).hexdigest()[:32]
    names = notebook_names(config)
    if all((memo / name).is_file() for name in names):
        return {name: (memo / name).read_bytes() for name in names}
    nb = notebook_module.read_notebook(source)
    out = {}
    for name, mode in zip(names, ("interactive", "batch")):
        converted = notebook_module.convert(nb, mode=mode, **common)
        out[name] = notebook_module.notebook_text(converted, f"{source} ({mode})").encode()
    try:
        for name, text in out.items():
            atomic_write(memo / name, text)
    except OSError:
        pass  # a read-only cache only costs the conversion next time
    return out


def render_to_dir(config: NotebookConfig, directory: Path, *, docker: bool, apptainer: bool,
                  gpu: bool = True, base: str | None = None, notebook: Path | None = None,
                  requirements: Path | None = None, ca_certs: Path | None = None,
                  system_python: bool = False) -> Context:
    """``hpc-dl4mic render``: recipes (and any local inputs given) into ``directory``."""
    from ..catalogue.config import parse_base
    from .render import make_spec

    if notebook is not None and not Path(notebook).is_file():
        raise InputError(f"--notebook {notebook}: no such file")
    if requirements is not None and not Path(requirements).is_file():
        raise InputError(f"--requirements {requirements}: no such file")
    certs = ca_cert_files(ca_certs)
    spec = make_spec(config, base=parse_base(base) if base else None, gpu=gpu,
                     notebook_files=notebook_names(config), ca_certs=ca_cert_names(certs),
                     accept_system_python=system_python)
    return write_context(spec, directory, docker=docker and spec.base.kind == "docker",
                         apptainer=apptainer,
                         notebooks=image_notebooks(config, notebook) if notebook else None,
                         requirements=requirements, ca_certs=certs,
                         inputs=[*([("--notebook", Path(notebook))] if notebook else []),
                                 *([("--requirements", Path(requirements))]
                                   if requirements else []),
                                 *(("--ca-certs", c) for c in certs)])
