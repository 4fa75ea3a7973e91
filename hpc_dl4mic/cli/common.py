"""What several command groups share: exit codes, JSON output and reusable option sets.

Imports click and the light :mod:`hpc_dl4mic.jobs.resources` only (``--help`` stays fast).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..jobs.resources import RESOURCE_SPECS, JobResources

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def print_json(data: object) -> None:
    """``data`` as indented JSON on stdout."""
    import json

    click.echo(json.dumps(data, indent=2, sort_keys=False))


def progress(verbose: bool):
    """A :class:`hpc_dl4mic.progress.Progress` printer (quiet unless ``verbose``)."""
    from ..progress import Progress

    return Progress(verbose=verbose)


def apply(options: list[Decorator]) -> Decorator:
    """One decorator adding ``options`` in the order listed (as in ``--help``)."""
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


build_options = apply([
    click.option("--base", metavar="BASE",
                 help="docker://IMAGE, localimage:PATH.sif or debootstrap:SUITE[@MIRROR] "
                      "(default: the config's CUDA base)."),
    click.option("--cpu", is_flag=True, help="CPU variant (no CUDA base)."),
    click.option("--notebook", type=click.Path(dir_okay=False, path_type=Path),
                 help="Local notebook file instead of the config's notebook_url."),
    click.option("--requirements", type=click.Path(dir_okay=False, path_type=Path),
                 help="Local requirements file instead of the config's requirements_url."),
    click.option("--ca-certs", type=click.Path(path_type=Path), metavar="DIR",
                 help="Site CA certificates (*.crt) to install in the image."),
    click.option("--system-python", is_flag=True,
                 help="On a Debian base, accept its python3 instead of python_version."),
])

cache_option = click.option(
    "--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Image cache folder (default $HPC_DL4MIC_CACHE or ~/.cache/hpc-dl4mic/images).")

profile_file_option = click.option(
    "--profile-file", type=click.Path(dir_okay=False, path_type=Path),
    help="Profiles file (default ~/.config/hpc-dl4mic/profiles.yaml).")

accept_host_key_option = click.option(
    "--accept-new-host-key", is_flag=True, help="Trust and remember an unknown SSH host key.")

RESOURCE_PARAM = "resource_{}"  # the click parameter name of JobResources field {}


def resource_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """One ``--NAME`` option per :class:`JobResources` field (help and type from its
    metadata); the command receives them as one ``resources: JobResources`` argument."""
    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(RESOURCE_PARAM.format(name)) for name in RESOURCE_SPECS}
        return func(*args, resources=JobResources(**values), **kwargs)

    return apply([click.option(f"--{name}", RESOURCE_PARAM.format(name), help=spec.help,
                               type=int if spec.kind is int else None)
                  for name, spec in RESOURCE_SPECS.items()])(command)


def exit_for(reason: str) -> None:
    """Exit codes of an attached command: 0 when Jupyter was shut down (COMPLETED), 1 when
    the job ended otherwise (TIMEOUT, FAILED, ...), 130 on Ctrl-C."""
    if reason == "interrupted":
        sys.exit(EXIT_INTERRUPTED)
    if reason == "job-failed":
        sys.exit(1)
