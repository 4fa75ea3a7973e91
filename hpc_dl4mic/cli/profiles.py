"""Cluster profile commands: profile list/show/test/add/remove."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..jobs.resources import JobResources
from .common import accept_host_key_option, print_json, profile_file_option, resource_options


@click.group("profile")
def profile_group() -> None:
    """Cluster profiles (~/.config/hpc-dl4mic/profiles.yaml)."""


@profile_group.command("list")
@profile_file_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def profile_list(profile_file: Path | None, as_json: bool) -> None:
    """List profiles (the built-in `local-cluster` is the local test cluster)."""
    from ..remote.profiles import load_profiles

    profiles = load_profiles(profile_file,
                             warn=lambda line: click.echo(f"hpc-dl4mic: warning: {line}",
                                                          err=True))
    if as_json:
        print_json([p.to_dict() for p in profiles.values()])
        return
    for p in profiles.values():
        where = f"{p.user + '@' if p.user else ''}{p.host}{':' + str(p.port) if p.port else ''}"
        click.echo(f"{p.name:<16} {where}{'  (built-in)' if p.builtin else ''}")


def _from_here(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A template path given here: relative means from the current folder (saved absolute);
    ``~`` is kept as written."""
    if not value or value.startswith("~") or os.path.isabs(value):
        return value
    return os.path.abspath(value)


def template_options(command):
    """``--job-template``, ``--batch-template``, ``--command-template``, ``--build-template``."""
    for key, what in reversed((("job", "submit's Jupyter job"), ("batch", "batch's job array"),
                               ("command", "run's and check-gpu's job"),
                               ("build", "a SLURM build job"))):
        command = click.option(f"--{key}-template", f"{key}_template", metavar="FILE",
                               callback=_from_here,
                               help=f"Site Jinja template for {what} (extends the built-in "
                                    "or replaces it).")(command)
    return command


@profile_group.command("show")
@click.argument("name")
@profile_file_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def profile_show(name: str, profile_file: Path | None, as_json: bool) -> None:
    """Show one profile."""
    from ..remote.profiles import get_profile, profile_rows

    profile = get_profile(name, profile_file)
    if as_json:
        print_json(profile.to_dict())
        return
    for key, shown in profile_rows(profile):
        click.echo(f"{key + ':':<14} {shown}")


@profile_group.command("test")
@click.argument("name")
@profile_file_option
@accept_host_key_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def profile_test(name: str, profile_file: Path | None, accept_new_host_key: bool,
                 as_json: bool) -> None:
    """Connect and check sbatch, apptainer and the cluster folders; exit 1 if any is missing."""
    from ..remote.hosts import probe_profile

    checks = probe_profile(name, profile_file, accept_new_host_key=accept_new_host_key)
    if as_json:
        print_json([c.__dict__ for c in checks])
    else:
        for c in checks:
            click.echo(f"{'ok' if c.ok else 'MISSING':<8} {c.what:<12} {c.detail}")
    if not all(c.ok for c in checks):
        sys.exit(1)


@profile_group.command("add")
@click.argument("name")
@click.option("--host", required=True, help="SSH host or ~/.ssh/config alias.")
@click.option("--user")
@click.option("--port", type=int)
@click.option("--identity", help="Private key file.")
@click.option("--proxy-jump", help="Jump host(s), as ssh -J.")
@click.option("--work-dir", help="Remote work folder (default ~/.hpc-dl4mic).")
@click.option("--cache-dir", help="Remote image cache (default WORK_DIR/images).")
@click.option("--build", type=click.Choice(["slurm", "login"]), default="slurm",
              show_default=True, help="Where `build --on` runs.")
@resource_options
@click.option("--module", "modules", multiple=True, help="`module load` this (repeatable).")
@click.option("--sbatch-extra", multiple=True, help="Extra #SBATCH option (repeatable).")
@click.option("--data-dir", help="Default data folder on the cluster.")
@click.option("--results-dir", help="Default results folder on the cluster.")
@click.option("--known-hosts", help="known_hosts file for this cluster's host keys.")
@click.option("--node-internet", is_flag=True, help="The compute nodes have internet.")
@click.option("--connect-timeout", type=int,
              help="Seconds to reach the login node before giving up (default 15).")
@template_options
@profile_file_option
def profile_add(name: str, profile_file: Path | None, resources: JobResources,
                modules: tuple[str, ...], sbatch_extra: tuple[str, ...], **values) -> None:
    """Add or replace profile NAME."""
    from ..remote.profiles import Profile, save_profile

    path = save_profile(Profile(name=name, resources=resources, modules=modules,
                                sbatch_extra=sbatch_extra, **values), profile_file)
    click.echo(f"saved profile {name} in {path}")


@profile_group.command("remove")
@click.argument("name")
@profile_file_option
def profile_remove(name: str, profile_file: Path | None) -> None:
    """Remove profile NAME from the profiles file."""
    from ..remote.profiles import remove_profile

    path = remove_profile(name, profile_file)
    click.echo(f"removed profile {name} from {path}")


COMMANDS = (profile_group,)
