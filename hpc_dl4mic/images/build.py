"""The build flow: the cached image for some build inputs on a host, building it with the
builder the user chose when it is not there yet.

One flow for every place: this machine (:class:`~hpc_dl4mic.remote.localhost.LocalHost`,
builder ``here``) and a cluster (its host, builder ``login`` or ``slurm``). The SIF is
built in a private folder under ``CACHE/.tmp`` and renamed into place only when complete:
an interrupted or failed build never leaves an image in the cache, and its folder is
removed (also on Ctrl-C or SIGTERM, after the builder stopped the build).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..catalogue.config import NotebookConfig
from ..errors import BuildError, CommandError
from ..remote.runner import tail, terminating
from .builders import (
    BUILD_PID_FILE,
    Apptainer,
    Builder,
    _stderr_notice,
    in_own_process_group,
    inspect_labels,
    make_builder,
    parse_labels,
    profile_builder,
    stop_group_argv,
)
from .cache import BUILT, ImageCache, ImageRecord, image_stem, is_local, on_host, remove_tree
from .inputs import (
    BASE_KEY_LABEL,
    KEY_LABEL,
    BuildInputs,
    DigestFn,
    base_digest,
    find_input,
    host_base_digest,
    image_key,
    prepare_base_image,
    prepare_notebook_image,
    remote_base_digest,
    write_build_context,
)

if TYPE_CHECKING:
    from ..remote.host import Host
    from ..remote.runner import LocalRunner

__all__ = ["BASE_KEY_LABEL", "BUILD_PID_FILE", "KEY_LABEL", "BuildInputs", "BuildResult",
           "DigestFn", "ManyResult", "VerifyResult", "base_digest", "build", "build_for_profile",
           "build_image", "build_many", "find_input", "host_base_digest", "image_key",
           "in_own_process_group", "inspect_labels", "make_builder", "prepare_base_image",
           "prepare_notebook_image", "profile_builder", "remote_base_digest",
           "stop_group_argv", "verify_cache"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    path: Path
    key: str
    name: str
    cached: bool
    seconds: float

    def to_dict(self) -> dict:
        return {"name": self.name, "path": str(self.path), "key": self.key,
                "cached": self.cached, "seconds": round(self.seconds, 3)}


def build(inputs: BuildInputs, host: Host, cache: ImageCache | Path | str | None = None, *,
          builder: Builder | None = None, force: bool = False,
          progress: Progress | None = None, notice: Progress | None = None,
          timeout: float | None = None) -> BuildResult:
    """The image for ``inputs`` in ``cache`` (an :class:`ImageCache`, or a folder on
    ``host``; default: this machine's cache), built by ``builder`` (default ``here``) when
    it is not there or ``force`` is given.

    Builds of the same image into one cache wait for each other, on this machine and on a
    cluster (:meth:`ImageCache.build_lock`): after the wait the cache is checked again and
    the later ones return the image the first built.
    On Ctrl-C, SIGTERM or a timeout the builder stops the build (``notice``, default
    stderr, gets one line saying so) and the build folder is removed before the exception
    propagates. A failed build is a :class:`BuildError` with the tail of its log.
    """
    started = time.monotonic()
    for line in inputs.notes:
        (notice or _stderr_notice)(line)
    if not isinstance(cache, ImageCache):
        cache = ImageCache(cache, host)
    if not force:
        record = cache.lookup(inputs.name, inputs.key)
        if record is not None:
            return BuildResult(cache.sif_path(inputs.name, inputs.key), inputs.key,
                               inputs.name, True, time.monotonic() - started)
    say = progress or (lambda _line: None)
    with terminating(), cache.build_lock(inputs.name, inputs.key, say=say) as lock:
        if not force and cache.lookup(inputs.name, inputs.key) is not None:
            # built by another process while this one waited for the lock
            by = f" by {lock.holder}" if lock.holder else ""
            say(f"{image_stem(inputs.name, inputs.key)} was built{by} meanwhile "
                f"(waited {lock.seconds:.0f} s): using it")
            return BuildResult(cache.sif_path(inputs.name, inputs.key), inputs.key,
                               inputs.name, True, time.monotonic() - started)
        path = _build(inputs, host, cache, builder or make_builder("here"), say=say,
                      notice=notice or _stderr_notice, timeout=timeout)
    return BuildResult(path, inputs.key, inputs.name, False, time.monotonic() - started)


def _build(inputs: BuildInputs, host: Host, cache: ImageCache, builder: Builder, *,
           say: Progress, notice: Progress, timeout: float | None) -> Path:
    fakeroot = builder.fakeroot
    if fakeroot is None:
        fakeroot = host.run(["id", "-u"], timeout=60).stdout.strip() != "0"
    tmp = str(cache.new_tmp_dir(image_stem(inputs.name, inputs.key)))
    try:
        if not is_local(host):
            say(f"uploading build context to {host.display}:{tmp}")
        write_build_context(inputs, host, tmp)
        argv = builder.apptainer.build_argv(BUILT, inputs.definition_name, fakeroot)
        outcome = builder.run(host, inputs, tmp, argv, say=say, notice=notice, timeout=timeout)
        where = on_host(host)
        if not outcome.ok:
            status = "" if outcome.returncode is None else f" (exit {outcome.returncode})"
            raise BuildError(f"apptainer build of {inputs.name}{where} failed{status}:\n"
                             f"{tail(outcome.log, 25)}", argv=argv,
                             returncode=outcome.returncode, stderr=outcome.log)
        built = f"{tmp}/{BUILT}"
        info = host.stat(built)
        if info is None or info.kind != "file" or info.size == 0:
            raise BuildError(f"apptainer build of {inputs.name}{where} produced no image",
                             argv=argv)
        inspected = host.run(builder.apptainer.inspect_argv(BUILT), cwd=tmp, timeout=120)
        record = ImageRecord(name=inputs.name, key=inputs.key,
                             sha256=host.checksums([built])[built], size=info.size,
                             created=time.time(), base=str(inputs.base),
                             tool_version=__version__,
                             labels=parse_labels(inspected.stdout, built), inputs=inputs.inputs)
        return cache.add(built, record)
    finally:
        remove_tree(host, tmp)


# -- builds for a cache on this machine, and for a profile --------------------------------

def _local_host(runner: LocalRunner | None) -> Host:
    from ..remote.localhost import LocalHost

    host = LocalHost()
    if runner is not None:
        host.runner = runner
    return host


def build_image(inputs: BuildInputs, cache: ImageCache, *, runner: LocalRunner | None = None,
                apptainer: str = "apptainer", fakeroot: bool | None = None,
                progress: Progress | None = None, timeout: float | None = None,
                force: bool = False) -> BuildResult:
    """The cached image for ``inputs`` in a cache on this machine, built here when missing."""
    host = _local_host(runner) if runner is not None else cache.host
    return build(inputs, host, cache, builder=make_builder("here", apptainer=apptainer,
                                                           fakeroot=fakeroot),
                 force=force, progress=progress, timeout=timeout)


def build_for_profile(inputs: BuildInputs, host: Host, profile, *, mode: str | None = None,
                      fakeroot: bool | None = None, progress: Progress | None = None,
                      timeout: float | None = None, force: bool = False,
                      notice: Progress | None = None) -> BuildResult:
    """The image in the profile's cache on ``host`` (its cluster, or this machine for
    ``--local``), built there when missing by ``mode`` (``login`` or ``slurm``; default:
    the profile's ``build``)."""
    builder = profile_builder(profile, mode, fakeroot=fakeroot)
    cache = ImageCache(profile.remote_cache_dir(host.home()), host,
                       label=f"profile {profile.name}: cache_dir")
    return build(inputs, host, cache, builder=builder, force=force, progress=progress,
                 notice=notice, timeout=timeout)


# -- checking a cache ----------------------------------------------------------------------

@dataclass
class VerifyResult:
    name: str
    key: str
    path: Path
    ok: bool
    problems: list[str]

    def to_dict(self) -> dict:
        return {"name": self.name, "key": self.key, "path": str(self.path), "ok": self.ok,
                "problems": self.problems}


def verify_cache(cache: ImageCache, *, runner: LocalRunner | None = None,
                 apptainer: str | Apptainer = "apptainer") -> list[VerifyResult]:
    """Check every image: size and SHA-256 against its record, and the key label that
    ``apptainer inspect`` reads from the image against the key in its name."""
    host = _local_host(runner) if runner is not None else cache.host
    results = []
    for record in cache.records():
        sif = cache.sif_path(record.name, record.key)
        problems: list[str] = []
        info = host.stat(str(sif))
        if info is None or info.kind != "file":
            problems.append("image file is missing")
        else:
            if info.size != record.size:
                problems.append(f"size {info.size} != recorded {record.size} (truncated?)")
            elif host.checksums([str(sif)])[str(sif)] != record.sha256:
                problems.append("sha256 differs from the record (corrupted)")
            if not problems:
                try:
                    labels = inspect_labels(sif, host=host, apptainer=apptainer)
                except CommandError as exc:
                    problems.append(f"apptainer inspect failed: {tail(exc.stderr, 1)}")
                else:
                    found = labels.get(KEY_LABEL) or labels.get(BASE_KEY_LABEL)
                    if found != record.key:
                        problems.append(f"key label {found!r} does not match the key")
        results.append(VerifyResult(record.name, record.key, sif, not problems, problems))
    for orphan in cache.orphans():
        results.append(VerifyResult(orphan.stem, "", orphan, False,
                                    ["no record for this image" if orphan.suffix == ".sif"
                                     else "record without an image"]))
    return results


# -- many images ---------------------------------------------------------------------------

@dataclass
class ManyResult:
    built: list[BuildResult] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # name, one-line reason

    def to_dict(self) -> dict:
        return {"built": [b.to_dict() for b in self.built],
                "failed": [{"name": n, "error": e} for n, e in self.failed]}


def build_many(configs: list[NotebookConfig], cache: ImageCache, *,
               notebook_dir: Path | None = None, requirements_dir: Path | None = None,
               progress: Progress | None = None, **options) -> ManyResult:
    """Build (or find cached) images for many configs; continue past failures."""
    from ..catalogue.sources import folder_hint, notebook_path, requirements_path
    from ..errors import HpcDl4micError

    say = progress or (lambda _line: None)
    outcome = ManyResult()
    for index, config in enumerate(configs, 1):
        say(f"[{index}/{len(configs)}] {config.name}")
        try:
            # resolved here so that a failed download names this command's options
            notebook = find_input(notebook_dir, config.notebook_filename) or notebook_path(
                config, None, folder_hint("--notebook-dir", notebook_dir,
                                          config.notebook_filename))
            requirements = find_input(requirements_dir, config.requirements_filename) or \
                requirements_path(config, None, folder_hint(
                    "--requirements-dir", requirements_dir, config.requirements_filename))
            inputs = prepare_notebook_image(config, notebook=notebook,
                                            requirements=requirements, **options)
            outcome.built.append(build_image(inputs, cache, progress=progress))
        except HpcDl4micError as exc:
            outcome.failed.append((config.name, str(exc).splitlines()[0]))
    return outcome
