"""The image commands by name: ``build`` (a catalogue target, here or on a cluster),
``base`` and ``cache build`` (many targets), each resolving its inputs and calling the one
build flow (:func:`~hpc_dl4mic.images.build.build`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .build import BuildResult, ManyResult, build_for_profile, build_image, build_many
from .cache import ImageCache
from .inputs import prepare_base_image, prepare_notebook_image, remote_base_digest

Progress = Callable[[str], None]


def build_target(target: str, *, options: dict, cache_dir: Path | None = None,
                 on_profile: str | None = None, profile_file: Path | None = None,
                 build_on: str | None = None, fakeroot: bool | None = None,
                 force: bool = False, accept_new_host_key: bool = False,
                 definition_only: bool = False,
                 progress: Progress | None = None) -> BuildResult | str:
    """``build``: TARGET's image in this machine's cache (``cache_dir``), or with
    ``on_profile`` in that cluster's cache, built by ``build_on`` (login or slurm; default:
    the profile's). ``options`` are :func:`prepare_notebook_image`'s. With
    ``definition_only`` the Apptainer definition text is returned and nothing is built."""
    from ..catalogue.config import resolve_target

    config = resolve_target(target)
    if not on_profile:
        inputs = prepare_notebook_image(config, **options)
        if definition_only:
            return inputs.definition
        return build_image(inputs, ImageCache(cache_dir), fakeroot=fakeroot,
                           progress=progress, force=force)
    from ..remote.hosts import open_host
    from ..remote.profiles import get_profile

    profile = get_profile(on_profile, profile_file)
    if (build_on or profile.build) == "slurm" and not definition_only:
        from ..jobs.site_templates import check_profile_templates

        check_profile_templates(profile, ["build_template"])  # before connecting
    with open_host(profile, accept_new_host_key=accept_new_host_key) as host:
        inputs = prepare_notebook_image(config, digest=remote_base_digest(host), **options)
        if definition_only:
            return inputs.definition
        return build_for_profile(inputs, host, profile, mode=build_on, fakeroot=fakeroot,
                                 progress=progress, force=force)


def base_suite(suite: str | None = None, *, python: str | None = None,
               target: str | None = None) -> str:
    """The Debian suite of ``base``: ``suite``, else the one whose python3 is ``python`` or
    TARGET's ``python_version`` (3.9 bullseye, 3.11 bookworm, 3.13 trixie), else bookworm."""
    from ..catalogue.config import debian_choices, debian_suite_for, resolve_target
    from ..errors import InputError

    given = [name for name, value in (("--suite", suite), ("--python", python),
                                      ("--for", target)) if value]
    if len(given) > 1:
        raise InputError(f"{' and '.join(given)}: give one of --suite, --python, --for")
    if suite:
        return suite
    where = f"--python {python}" if python else ""
    if target:
        python = resolve_target(target).python_version
        where = f"--for {target}: its python_version {python}"
    if not python:
        return "bookworm"
    found = debian_suite_for(python)
    if found is None:
        raise InputError(f"{where}: no Debian suite has Python {python} (Debian bases have "
                         f"Python {debian_choices()}); use a docker:// CUDA base instead")
    return found


def build_base(suite: str | None = None, mirror: str | None = None, *,
               python: str | None = None, target: str | None = None,
               ca_certs: Path | None = None, cache_dir: Path | None = None,
               progress: Progress | None = None) -> BuildResult:
    """``base``: the small offline Debian base image in this machine's cache, of the suite
    :func:`base_suite` picks."""
    chosen = base_suite(suite, python=python, target=target)
    return build_image(prepare_base_image(chosen, mirror, ca_certs=ca_certs),
                       ImageCache(cache_dir), progress=progress)


def build_catalogue(names: tuple[str, ...] | list[str], *, build_all: bool = False,
                    cache_dir: Path | None = None, notebook_dir: Path | None = None,
                    requirements_dir: Path | None = None, progress: Progress | None = None,
                    **options) -> ManyResult:
    """``cache build``: images for NAMES (or the whole catalogue with ``build_all``),
    continuing past failures."""
    from ..catalogue.config import catalogue, load_config, resolve_target
    from ..errors import InputError

    if build_all == bool(names):
        raise InputError("give notebook NAMES or --all (not both)")
    configs = ([load_config(e.path, name=e.name, group=e.group) for e in catalogue()]
               if build_all else [resolve_target(n) for n in names])
    return build_many(configs, ImageCache(cache_dir), notebook_dir=notebook_dir,
                      requirements_dir=requirements_dir, progress=progress, **options)
