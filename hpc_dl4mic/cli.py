"""Command line: parse options, call one library function, print. No logic lives here.

Only click is imported at module level so that ``hpc-dl4mic --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Group(click.Group):
    """Turns the project's errors into one line on stderr and the documented exit code."""

    def invoke(self, ctx: click.Context):
        from .errors import HpcDl4micError

        try:
            return super().invoke(ctx)
        except HpcDl4micError as exc:
            click.echo(f"hpc-dl4mic: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("hpc-dl4mic: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)


def _print_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="hpc-dl4mic")
def main() -> None:
    """Run DL4MicEverywhere / ZeroCostDL4Mic notebooks on HPC clusters with Apptainer and SLURM.

    TARGET is a notebook name from `hpc-dl4mic list` (case-insensitive; a unique prefix is
    enough) or a path to a configuration.yaml.
    """


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(as_json: bool) -> None:
    """List the notebooks hpc-dl4mic knows."""
    from .config import catalogue, load_config

    configs = [load_config(e.path, name=e.name, group=e.group) for e in catalogue()]
    if as_json:
        _print_json([{k: c.to_dict()[k] for k in ("name", "group", "title", "notebook_version",
                                                    "python_version", "cuda_version",
                                                    "ubuntu_version")} for c in configs])
        return
    width = max(len(c.name) for c in configs)
    click.echo(f"{'NAME':<{width}}  {'VERSION':<8} {'PYTHON':<6} {'CUDA':<7} GROUP")
    for c in configs:
        click.echo(f"{c.name:<{width}}  {c.notebook_version:<8} {c.python_version:<6} "
                   f"{c.cuda_version:<7} {c.group}")


@main.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(target: str, as_json: bool) -> None:
    """Show one notebook's configuration."""
    from .config import resolve_target

    data = resolve_target(target).to_dict()
    if as_json:
        _print_json(data)
        return
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, [], False))
        elif isinstance(value, list):
            value = " ".join(str(v) for v in value)
        click.echo(f"{key + ':':<26} {value if value not in (None, '') else '-'}")


def _common_build_options(func):
    for option in reversed([
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
    ]):
        func = option(func)
    return func


@main.command()
@click.argument("target")
@click.option("--docker", "docker", is_flag=True, help="Write the Dockerfile.")
@click.option("--apptainer", "apptainer", is_flag=True, help="Write the Apptainer definition.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Output folder (created).")
@_common_build_options
def render(target: str, docker: bool, apptainer: bool, output: Path, base: str | None,
           cpu: bool, notebook: Path | None, requirements: Path | None, ca_certs: Path | None,
           system_python: bool) -> None:
    """Render TARGET's Dockerfile and/or Apptainer definition into a build folder.

    Without --docker/--apptainer both are written (the Dockerfile only for docker:// bases).
    Local files given with --notebook/--requirements/--ca-certs are copied in too.
    """
    from .config import resolve_target
    from .context import render_to_dir

    if not docker and not apptainer:
        docker = apptainer = True
    ctx = render_to_dir(resolve_target(target), output, docker=docker, apptainer=apptainer,
                        gpu=not cpu, base=base, notebook=notebook, requirements=requirements,
                        ca_certs=ca_certs, system_python=system_python)
    for path in ctx.written:
        click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    main()
