"""A build context folder on disk (``hpc-dl4mic render``): the recipes plus the files they
copy into the image, laid out as :mod:`.layout` says (relative paths, so the recipes are
the same wherever the folder is)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..catalogue.config import NotebookConfig
from ..errors import InputError
from ..fsutil import atomic_copy, atomic_write
from .inputs import ca_cert_files, ca_cert_names, image_notebooks
from .layout import CA_CERTS, DOCKERFILE, NOTEBOOKS, REQUIREMENTS, definition_file
from .render import ImageSpec, notebook_names, render_definition, render_dockerfile

__all__ = ["Context", "ca_cert_files", "ca_cert_names", "definition_name", "image_notebooks",
           "render_to_dir", "write_context"]


def definition_name(config: NotebookConfig) -> str:
    return definition_file(config.name)


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
        texts[DOCKERFILE] = render_dockerfile(spec)
    certs = list(zip(ca_certs, ca_cert_names(list(ca_certs))))
    _refuse_overwriting(
        [directory / NOTEBOOKS / name for name in (notebooks or {})]
        + ([directory / REQUIREMENTS] if requirements is not None else [])
        + [directory / CA_CERTS / name for _src, name in certs]
        + [directory / name for name in texts], inputs, directory)
    for name, data in (notebooks or {}).items():
        ctx.written.append(atomic_write(directory / NOTEBOOKS / name, data))
    if requirements is not None:
        ctx.written.append(atomic_copy(requirements, directory / REQUIREMENTS))
    for src, name in certs:
        ctx.written.append(atomic_copy(src, directory / CA_CERTS / name))
    for name, text in texts.items():
        ctx.written.append(atomic_write(directory / name, text))
    return ctx


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
                     accept_system_python=system_python,
                     requirements_text=None if requirements is None else
                     Path(requirements).read_text(encoding="utf-8", errors="replace"))
    return write_context(spec, directory, docker=docker and spec.base.kind == "docker",
                         apptainer=apptainer,
                         notebooks=image_notebooks(config, notebook) if notebook else None,
                         requirements=requirements, ca_certs=certs,
                         inputs=[*([("--notebook", Path(notebook))] if notebook else []),
                                 *([("--requirements", Path(requirements))]
                                   if requirements else []),
                                 *(("--ca-certs", c) for c in certs)])
