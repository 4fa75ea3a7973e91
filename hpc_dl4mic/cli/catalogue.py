"""Catalogue commands: list, show, render, convert, params (no cluster involved)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import build_options, print_json


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(as_json: bool) -> None:
    """List the notebooks hpc-dl4mic knows."""
    from ..catalogue.config import catalogue, load_config

    configs = [load_config(e.path, name=e.name, group=e.group) for e in catalogue()]
    if as_json:
        print_json([{k: c.to_dict()[k] for k in ("name", "group", "title", "notebook_version",
                                                    "python_version", "cuda_version",
                                                    "ubuntu_version")} for c in configs])
        return
    width = max(len(c.name) for c in configs)
    click.echo(f"{'NAME':<{width}}  {'VERSION':<8} {'PYTHON':<6} {'CUDA':<7} GROUP")
    for c in configs:
        click.echo(f"{c.name:<{width}}  {c.notebook_version:<8} {c.python_version:<6} "
                   f"{c.cuda_version:<7} {c.group}")


@click.command()
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(target: str, as_json: bool) -> None:
    """Show one notebook's configuration."""
    from ..catalogue.config import resolve_target

    data = resolve_target(target).to_dict()
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, [], False))
        elif isinstance(value, list):
            value = " ".join(str(v) for v in value)
        click.echo(f"{key + ':':<26} {value if value not in (None, '') else '-'}")


@click.command()
@click.argument("target")
@click.option("--docker", "docker", is_flag=True, help="Write the Dockerfile.")
@click.option("--apptainer", "apptainer", is_flag=True, help="Write the Apptainer definition.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Output folder (created).")
@build_options
def render(target: str, docker: bool, apptainer: bool, output: Path, base: str | None,
           cpu: bool, notebook: Path | None, requirements: Path | None, ca_certs: Path | None,
           system_python: bool) -> None:
    """Render TARGET's Dockerfile and/or Apptainer definition into a build folder.

    Without --docker/--apptainer both are written (the Dockerfile only for docker:// bases).
    Local files given with --notebook/--requirements/--ca-certs are copied in too.
    """
    from ..catalogue.config import resolve_target
    from ..images.context import render_to_dir

    if not docker and not apptainer:
        docker = apptainer = True
    ctx = render_to_dir(resolve_target(target), output, docker=docker, apptainer=apptainer,
                        gpu=not cpu, base=base, notebook=notebook, requirements=requirements,
                        ca_certs=ca_certs, system_python=system_python)
    for path in ctx.written:
        click.echo(str(path))


@click.command()
@click.argument("target")
@click.option("--mode", type=click.Choice(["interactive", "batch"]), default="interactive",
              show_default=True, help="Widgets for people, or papermill parameters for batch.")
@click.option("-o", "--output", type=click.Path(),
              help="Output file, or folder (existing, or ending in /; created with its "
                   "parents). Default ./<notebook>[.batch].ipynb, or <notebook>.hpc.ipynb "
                   "where that is the input itself.")
@click.option("--notebook", type=click.Path(dir_okay=False, path_type=Path),
              help="Local notebook file instead of the config's notebook_url.")
@click.option("--sections", help="Sections to remove, e.g. '1.1. 2.' (default: the config's).")
@click.option("--renumber", is_flag=True, help="Renumber the remaining sections.")
@click.option("--data-dir", default="/data", show_default=True, help="Default data path.")
@click.option("--results-dir", default="/results", show_default=True,
              help="Default results path.")
def convert(target: str, mode: str, output: str | None, notebook: Path | None,
            sections: str | None, renumber: bool, data_dir: str, results_dir: str) -> None:
    """Convert TARGET's Colab notebook (or an .ipynb) to run off Colab.

    interactive: form fields become ipywidgets, values saved to the results folder.
    batch: every #@param is a papermill parameter (first cell tagged `parameters`).
    """
    from ..catalogue.sources import convert_target

    click.echo(str(convert_target(target, mode=mode, output=output, notebook=notebook,
                                  sections=sections, renumber=renumber, data_dir=data_dir,
                                  results_dir=results_dir,
                                  say=lambda line: click.echo(f"hpc-dl4mic: {line}",
                                                              err=True))))


@click.command()
@click.argument("target")
@click.option("--notebook", type=click.Path(dir_okay=False, path_type=Path),
              help="Local notebook file instead of the config's notebook_url.")
@click.option("--sections", help="Sections to remove (default: the config's).")
@click.option("-p", "--parameter", "values", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Check a value against its field (repeatable); prints the typed values.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def params(target: str, notebook: Path | None, sections: str | None,
           values: tuple[tuple[str, str], ...], as_json: bool) -> None:
    """List the notebook's form fields (papermill parameters), or check values with -p;
    then the sections that need the internet."""
    from ..catalogue.sources import target_internet, target_params
    from ..notebooks.internet import report_lines
    from ..notebooks.params import spec_to_dict, validate_values
    from ..table import format_table

    specs = target_params(target, notebook=notebook, sections=sections)
    if values:
        print_json(validate_values(specs, dict(values)))
        return
    if as_json:
        print_json([spec_to_dict(s) for s in specs])
        return
    rows = [(s.section, s.name, s.type, repr(s.default), s.allowed()) for s in specs]
    for line in format_table(("SECTION", "NAME", "TYPE", "DEFAULT", "ALLOWED"), rows,
                             max_width={"NAME": 40, "DEFAULT": 32}):
        click.echo(line)
    internet = report_lines(target_internet(target, notebook=notebook, sections=sections))
    if internet:
        click.echo("\nNeeds the internet (compute nodes usually have none):")
        for line in internet:
            click.echo(f"  {line}")


COMMANDS = (list_cmd, show, render, convert, params,)
