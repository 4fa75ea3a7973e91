"""What a build needs: the definition, the files of its context, and the image key.

The image key hashes what determines the image's bytes: the rendered definition without
volatile labels (tool version, the key itself), every file copied into the image
(converted notebooks, requirements, CA certificates), the base reference and, for a
``localimage`` base, the base SIF's digest. A release that leaves the templates alone keeps
a shared cache valid. Two memo caches in the XDG cache keep a cache hit cheap: converted
notebooks (by source bytes and converter code) and base digests (by path, size, mtime).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..catalogue.config import Base, NotebookConfig
from ..errors import HpcDl4micError, InputError, RemoteError
from ..fsutil import atomic_write, cache_home
from .layout import REQUIREMENTS, ca_cert_file, definition_file, notebook_file

if TYPE_CHECKING:
    from ..remote.host import Host
    from .cache import ImageRecord

KEY_LABEL = "org.hpc-dl4mic.image-key"
BASE_KEY_LABEL = "org.hpc-dl4mic.base-image-key"
# Stamped into converted notebooks instead of the tool version, so that a release which
# leaves conversion alone keeps image keys (and admins' shared caches) valid. Bump it when
# the conversion rules change.
CONVERSION_STAMP = "hpc-dl4mic conversion 1"
DigestFn = Callable[[Base], str]


@dataclass(frozen=True)
class BuildInputs:
    """A definition plus the files of its build context: everything a build needs."""

    name: str
    definition: str  # with the key label
    files: dict[str, bytes]  # context-relative path -> content
    base: Base
    key: str
    inputs: dict[str, str] = field(default_factory=dict)  # what was hashed -> sha256
    notes: tuple[str, ...] = ()  # warnings for the user (not part of the key)

    @property
    def definition_name(self) -> str:
        return definition_file(self.name)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- base digests ------------------------------------------------------------------------

def _converter_digest(package: Path) -> str:
    """A hash of the notebooks package's code (every ``.py`` below it, sorted by path, the
    cell code included): any change to the converter invalidates converted notebooks."""
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _memo_path() -> Path:
    return cache_home() / "digests.json"


SUITE_LABEL = "org.hpc-dl4mic.debian-suite"


class BaseReader:
    """Reads a ``localimage`` base SIF on a host: its digest (``reader(base)``, a
    :data:`DigestFn`; '' for other bases) and the Debian suite `hpc-dl4mic base` recorded
    for it (:meth:`suite`). The cache record beside the SIF is read once."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._records: dict[str, ImageRecord | None] = {}

    def _resolve(self, base: Base):
        from .cache import is_local, on_host, read_record

        host = self.host
        ref = os.path.realpath(os.path.expanduser(base.ref)) if is_local(host) else base.ref
        info = host.stat(ref)
        if info is None or info.kind == "dir":
            raise InputError(f"base localimage:{base.ref}: no such file{on_host(host)}")
        if ref not in self._records:
            self._records[ref] = read_record(host, posixpath.splitext(ref)[0] + ".json")
        return ref, info, self._records[ref]

    def suite(self, base: Base) -> str | None:
        """The Debian suite of a base made by `hpc-dl4mic base` (from its record's labels);
        None for other bases and for SIFs without a record."""
        if base.kind != "localimage":
            return None
        _ref, info, record = self._resolve(base)
        if record is None or record.size != info.size:
            return None
        return record.labels.get(SUITE_LABEL) or None

    def __call__(self, base: Base) -> str:
        if base.kind != "localimage":
            return ""
        ref, info, record = self._resolve(base)
        if record is not None and record.size == info.size and record.sha256:
            return record.sha256
        host = self.host
        if info.kind == "link":  # a remote link: no size to memo by
            return _checksum(host, ref, base)
        memo_key = f"{host.display}:{ref}:{info.size}:{info.mtime!r}"
        try:
            memo = json.loads(_memo_path().read_text())
        except (OSError, ValueError):
            memo = {}
        if memo_key not in memo:
            memo[memo_key] = _checksum(host, ref, base)
            try:
                atomic_write(_memo_path(), json.dumps(memo, indent=0), mode=0o600)
            except OSError:
                pass  # a read-only home only costs a re-hash next time
        return str(memo[memo_key])


def host_base_digest(host: Host) -> BaseReader:
    """A base digest function reading a ``localimage`` base SIF on ``host`` ('' for other
    bases): the cache record beside the SIF when its size matches, else a memo keyed by
    host, path, size and mtime, else the host's checksum of the file."""
    return BaseReader(host)


def _checksum(host: Host, ref: str, base: Base) -> str:
    from .cache import on_host

    try:
        return host.checksums([ref])[ref]
    except (RemoteError, KeyError):
        raise InputError(f"base localimage:{base.ref}: no such file{on_host(host)}") from None


def _local_host() -> Host:
    from ..remote.localhost import LocalHost

    return LocalHost()


def base_digest(base: Base) -> str:
    """SHA-256 of a localimage base SIF on this machine ('' for other bases)."""
    return host_base_digest(_local_host())(base)


def remote_base_digest(host: Host) -> DigestFn:
    """The base digest function for a build on ``host`` (``build --on``, ``submit``)."""
    return host_base_digest(host)


# -- the key -----------------------------------------------------------------------------

def image_key(keyed_definition: str, base: Base, files: dict[str, bytes],
              digest: DigestFn = base_digest) -> tuple[str, dict]:
    """The content hash of an image, and the per-input digests it was made from."""
    inputs = {"definition": _digest(keyed_definition.encode()), "base": str(base),
              "base-sha256": digest(base)}
    inputs.update({f"file:{name}": _digest(data) for name, data in sorted(files.items())})
    key = _digest(json.dumps({"v": 1, **inputs}, sort_keys=True).encode())
    return key, inputs


def _with_key(render: Callable[[tuple[tuple[str, str], ...]], str], base: Base,
              files: dict[str, bytes], label: str = KEY_LABEL,
              digest: DigestFn = base_digest) -> tuple[str, str, dict]:
    from .render import keyed_definition

    key, inputs = image_key(keyed_definition(render(())), base, files, digest)
    return render(((label, key),)), key, inputs


# -- context files -----------------------------------------------------------------------

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
    for file in files:  # the names are words of the recipes' %files / COPY lines
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", file.name):
            raise InputError(f"--ca-certs {ca_dir}: {file.name!r}: a certificate's file name "
                             "may have only letters, digits and _.+-")
    return files


def ca_cert_names(files: list[Path]) -> tuple[str, ...]:
    """Names the certificates get in the image (update-ca-certificates wants ``.crt``)."""
    return tuple(f.stem + ".crt" for f in files)


def context_files(*, notebooks: dict[str, bytes] | None = None,
                  requirements: bytes | None = None,
                  ca_certs: list[Path] = ()) -> dict[str, bytes]:
    """The build context's input files by context path (see :mod:`.layout`)."""
    files = {notebook_file(name): data for name, data in (notebooks or {}).items()}
    if requirements is not None:
        files[REQUIREMENTS] = requirements
    for src, name in zip(ca_certs, ca_cert_names(list(ca_certs))):
        files[ca_cert_file(name)] = Path(src).read_bytes()
    return files


def image_notebooks(config: NotebookConfig, source: Path) -> dict[str, bytes]:
    """The converted notebooks that go into the image, by name (interactive, batch).

    Conversion is deterministic, so its output is memoised in the XDG cache under a hash of
    the source bytes, the options and the converter's own code: a cache hit of ``build``
    does not even import nbformat.
    """
    from ..notebooks import convert as notebook_module
    from .render import notebook_names

    source = Path(source)
    data = source.read_bytes()
    common = dict(sections_to_remove=list(config.sections_to_remove),
                  source_name=config.notebook_filename, config_name=config.name,
                  source_sha256=_digest(data), tool_version=CONVERSION_STAMP)
    converter = _converter_digest(Path(notebook_module.__file__).parent)
    memo = cache_home() / "converted" / _digest(
        json.dumps({**common, "converter": converter}, sort_keys=True).encode())[:32]
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


# -- preparing a build -------------------------------------------------------------------

def prepare_notebook_image(config: NotebookConfig, *, notebook: Path | None = None,
                           requirements: Path | None = None, base: str | None = None,
                           gpu: bool = True, ca_certs: Path | None = None,
                           system_python: bool = False,
                           digest: DigestFn | None = None) -> BuildInputs:
    """Resolve inputs, convert notebooks, render and key the image of ``config``.

    ``digest`` reads a localimage base where it will be used (``remote_base_digest`` for a
    build on the cluster)."""
    from ..catalogue.config import parse_base
    from ..catalogue.sources import notebook_path, requirements_path
    from .render import jupyter_pins, make_spec, render_definition

    digest = digest or host_base_digest(_local_host())
    certs = ca_cert_files(ca_certs)
    base_obj = parse_base(base) if base else None
    chosen = base_obj or config.hpc.base
    suite = digest.suite(chosen) if chosen and isinstance(digest, BaseReader) else None
    source = notebook_path(config, notebook)
    nb_files = image_notebooks(config, source)
    req_path = requirements_path(config, requirements)
    req = req_path.read_bytes()
    spec = make_spec(config, base=base_obj, gpu=gpu, notebook_files=tuple(nb_files),
                     ca_certs=ca_cert_names(certs), accept_system_python=system_python,
                     base_suite=suite, requirements_text=req.decode("utf-8", "replace"))
    files = context_files(notebooks=nb_files, ca_certs=certs, requirements=req)
    definition, key, inputs = _with_key(
        lambda extra: render_definition(replace(spec, labels_extra=extra)), spec.base, files,
        digest=digest)
    notes = install_notes(source, req.decode("utf-8", "replace"), req_path.name,
                          extra=(*spec.extra_pip, *jupyter_pins(spec.python)))
    return BuildInputs(config.name, definition, files, spec.base, key, inputs, notes)


def install_notes(source: Path, requirements_text: str, requirements_name: str, *,
                  extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The warning about packages the notebook installs at run time that the image's
    requirements do not list (:mod:`~hpc_dl4mic.notebooks.installs`), or none."""
    from ..notebooks.installs import unlisted_installs, unlisted_note

    try:
        nb = json.loads(Path(source).read_bytes())
        found = unlisted_installs(nb, requirements_text, extra=extra)
    except (OSError, ValueError, KeyError, TypeError, HpcDl4micError):
        return ()  # conversion reported what is wrong with the notebook already
    note = unlisted_note(found, requirements_name)
    return (note,) if note else ()


def prepare_base_image(suite: str = "bookworm", mirror: str | None = None, *,
                       ca_certs: Path | None = None) -> BuildInputs:
    """The small Debian base image (``hpc-dl4mic base``)."""
    from .render import render_base_definition

    base = Base("debootstrap", suite, mirror or Base.mirror)
    certs = ca_cert_files(ca_certs)
    names = ca_cert_names(certs)
    files = context_files(ca_certs=certs)
    definition, key, inputs = _with_key(
        lambda extra: render_base_definition(suite, base.mirror, ca_certs=names,
                                             labels_extra=extra), base, files, BASE_KEY_LABEL)
    return BuildInputs(f"debian-{suite}-base", definition, files, base, key, inputs)


def write_build_context(inputs: BuildInputs, host: Host, directory: str) -> str:
    """Write the definition and its files into ``directory`` on ``host`` (private files);
    returns the definition's path."""
    made = {directory}
    for rel, data in inputs.files.items():
        parent = posixpath.dirname(f"{directory}/{rel}")
        if parent not in made:
            host.makedirs(parent, mode=0o700)
            made.add(parent)
        host.write_file(f"{directory}/{rel}", data, mode=0o600)
    definition = f"{directory}/{inputs.definition_name}"
    host.write_file(definition, inputs.definition, mode=0o600)
    return definition


def find_input(directory: Path | None, filename: str) -> Path | None:
    """``filename`` anywhere below ``directory`` (for `cache build --notebook-dir`)."""
    if directory is None:
        return None
    direct = Path(directory) / filename
    if direct.is_file():
        return direct
    return next(iter(sorted(Path(directory).rglob(filename))), None)
