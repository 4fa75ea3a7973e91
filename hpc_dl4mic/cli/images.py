"""Image commands: build (here or on a cluster), base, and the cache group."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import (
    accept_host_key_option,
    build_options,
    cache_option,
    print_json,
    profile_file_option,
    progress,
)


@click.command()
@click.argument("target")
@build_options
@cache_option
@click.option("--def-only", is_flag=True, help="Print the definition file and stop.")
@click.option("--force", is_flag=True, help="Rebuild even when the cache has the image.")
@click.option("--fakeroot/--no-fakeroot", default=None,
              help="apptainer build --fakeroot (default: when not root).")
@click.option("--on", "on_profile", metavar="PROFILE",
              help="Build on this cluster over SSH, into the profile's cache dir.")
@click.option("--build-on", type=click.Choice(["slurm", "login"]),
              help="With --on: a SLURM build job or the login node (default: the profile's).")
@accept_host_key_option
@profile_file_option
@click.option("-v", "--verbose", is_flag=True, help="Show apptainer's output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build(target: str, base: str | None, cpu: bool, notebook: Path | None,
          requirements: Path | None, ca_certs: Path | None, system_python: bool,
          cache_dir: Path | None, def_only: bool, force: bool, fakeroot: bool | None,
          on_profile: str | None, build_on: str | None, accept_new_host_key: bool,
          profile_file: Path | None, verbose: bool, as_json: bool) -> None:
    """Build TARGET's SIF image (or find it in the cache) and print its path."""
    from ..images.targets import build_target

    result = build_target(
        target, options=dict(notebook=notebook, requirements=requirements, base=base,
                             gpu=not cpu, ca_certs=ca_certs, system_python=system_python),
        cache_dir=cache_dir, on_profile=on_profile, profile_file=profile_file,
        build_on=build_on, fakeroot=fakeroot, force=force,
        accept_new_host_key=accept_new_host_key, definition_only=def_only,
        progress=progress(verbose))
    if isinstance(result, str):
        click.echo(result, nl=False)
        return
    if as_json:
        print_json(result.to_dict())
    else:
        state = "cached" if result.cached else f"built in {result.seconds:.0f} s"
        click.echo(f"{result.path}", nl=True)
        click.echo(f"{result.name} {result.key[:16]} ({state})", err=True)


@click.command("base")
@click.option("--suite", help="Debian suite (default: bookworm, or as --python/--for pick).")
@click.option("--python", metavar="X.Y",
              help="The suite whose python3 is X.Y (3.9 bullseye, 3.11 bookworm, 3.13 trixie).")
@click.option("--for", "target", metavar="TARGET",
              help="The suite whose python3 is TARGET's python_version.")
@click.option("--mirror", help="Debian mirror URL (default deb.debian.org).")
@click.option("--ca-certs", type=click.Path(path_type=Path), metavar="DIR",
              help="Site CA certificates (*.crt) to install in the image.")
@cache_option
@click.option("-v", "--verbose", is_flag=True, help="Show apptainer's output.")
def base_cmd(suite: str | None, python: str | None, target: str | None, mirror: str | None,
             ca_certs: Path | None, cache_dir: Path | None, verbose: bool) -> None:
    """Build the small offline Debian base image and print its path.

    Notebook images start from it with --base localimage:PATH (no registry needed).
    """
    from ..images.targets import build_base

    result = build_base(suite, mirror, python=python, target=target, ca_certs=ca_certs,
                        cache_dir=cache_dir, progress=progress(verbose))
    click.echo(str(result.path))


@click.group("cache")
def cache_group() -> None:
    """Manage an image cache (e.g. an admin's shared, group-readable cache)."""


@cache_group.command("build")
@click.argument("names", nargs=-1)
@click.option("--all", "build_all", is_flag=True, help="Every notebook in the catalogue.")
@click.option("--notebook-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder searched for each config's notebook file (by its URL's name).")
@click.option("--requirements-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder searched for each config's requirements file.")
@click.option("--base", metavar="BASE", help="Base for every image (see `build --help`).")
@click.option("--ca-certs", type=click.Path(path_type=Path), metavar="DIR",
              help="Site CA certificates to install in every image.")
@click.option("--system-python", is_flag=True, help="Accept a Debian base's python3.")
@cache_option
@click.option("-v", "--verbose", is_flag=True, help="Show apptainer's output.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def cache_build(names: tuple[str, ...], build_all: bool, notebook_dir: Path | None,
                requirements_dir: Path | None, base: str | None, ca_certs: Path | None,
                system_python: bool, cache_dir: Path | None, verbose: bool,
                as_json: bool) -> None:
    """Pre-build images for NAMES (or --all); continue past failures, report them at the end."""
    from ..images.targets import build_catalogue

    outcome = build_catalogue(names, build_all=build_all, cache_dir=cache_dir,
                              notebook_dir=notebook_dir, requirements_dir=requirements_dir,
                              progress=progress(verbose), base=base, ca_certs=ca_certs,
                              system_python=system_python)
    if as_json:
        print_json(outcome.to_dict())
    else:
        for item in outcome.built:
            click.echo(f"ok      {item.name:<28} {item.path}")
        for name, error in outcome.failed:
            click.echo(f"FAILED  {name:<28} {error}")
        click.echo(f"{len(outcome.built)} built or cached, {len(outcome.failed)} failed", err=True)
    if outcome.failed:
        sys.exit(1)


@cache_group.command("list")
@cache_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_list(cache_dir: Path | None, as_json: bool) -> None:
    """List the images in the cache (name, key, size, date, labels)."""
    import datetime

    from ..images.cache import ImageCache
    from ..table import format_table

    cache = ImageCache.existing(cache_dir)
    records = cache.records()
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    if not records:
        click.echo(f"no images in {cache.directory}", err=True)
        return
    rows = [(r.name, r.key[:16], f"{r.size / 2**20:.1f} MiB",
             datetime.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M"),
             r.labels.get("org.hpc-dl4mic.notebook-version", "")) for r in records]
    for line in format_table(("NAME", "KEY", "SIZE", "CREATED", "VERSION"), rows,
                             max_width={"NAME": 40}, right=("SIZE",)):
        click.echo(line)


@cache_group.command("verify")
@cache_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_verify(cache_dir: Path | None, as_json: bool) -> None:
    """Check every image's size, checksum and key label; exit 1 if any is bad."""
    from ..images.build import verify_cache
    from ..images.cache import ImageCache

    results = verify_cache(ImageCache.existing(cache_dir))
    if as_json:
        print_json([r.to_dict() for r in results])
    else:
        for r in results:
            click.echo(f"{'ok' if r.ok else 'BAD':<4} {r.path.name}"
                       + ("" if r.ok else f": {'; '.join(r.problems)}"))
    if any(not r.ok for r in results):
        sys.exit(1)


@cache_group.command("prune")
@cache_option
@click.option("--keep", type=int, help="Keep the newest N images per notebook.")
@click.option("--orphans", is_flag=True, help="Remove images without records and vice versa.")
@click.option("--dry-run", is_flag=True, help="Only print what would be removed.")
def cache_prune(cache_dir: Path | None, keep: int | None, orphans: bool, dry_run: bool) -> None:
    """Remove old images, orphans and leftovers of interrupted builds (older than a day)."""
    from ..images.cache import ImageCache

    removed = ImageCache.existing(cache_dir).prune(keep=keep, orphans=orphans, dry_run=dry_run)
    for path in removed:
        click.echo(f"{'would remove' if dry_run else 'removed'} {path}")
    if not removed:
        click.echo("nothing to prune", err=True)


COMMANDS = (build, base_cmd, cache_group,)
