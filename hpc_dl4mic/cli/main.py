"""Command line: parse options, call one library function, print. No logic lives here.

Only click is imported at module level so that ``hpc-dl4mic --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import __version__

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Group(click.Group):
    """Turns every error into one line on stderr and the documented exit code.

    The project's own errors carry their exit code; any other exception is a bug or an
    unforeseen failure: one line plus a hint, exit 1, and the traceback only with ``-v``.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault("hpc_dl4mic.argv", list(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        from ..errors import HpcDl4micError

        try:
            return super().invoke(ctx)
        except HpcDl4micError as exc:
            click.echo(f"hpc-dl4mic: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (KeyboardInterrupt, click.Abort):
            click.echo("hpc-dl4mic: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place unexpected errors are shown
            argv = ctx.meta.get("hpc_dl4mic.argv", [])
            if "-v" in argv or "--verbose" in argv:
                import traceback

                traceback.print_exc()
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(f"hpc-dl4mic: error: {type(exc).__name__}"
                       f"{': ' + detail if detail else ''} (run with -v for details)", err=True)
            sys.exit(1)


def _print_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="hpc-dl4mic")
@click.option("-v", "--verbose", "debug", is_flag=True,
              help="Show the traceback of an unexpected error (also accepted after a command "
                   "that has -v).")
def main(debug: bool) -> None:
    """Run DL4MicEverywhere / ZeroCostDL4Mic notebooks on HPC clusters with Apptainer and SLURM.

    TARGET is a notebook name from `hpc-dl4mic list` (case-insensitive; a unique prefix is
    enough) or a path to a configuration.yaml.
    """


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(as_json: bool) -> None:
    """List the notebooks hpc-dl4mic knows."""
    from ..catalogue.config import catalogue, load_config

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
    from ..catalogue.config import resolve_target

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
    from ..catalogue.config import resolve_target
    from ..images.context import render_to_dir

    if not docker and not apptainer:
        docker = apptainer = True
    ctx = render_to_dir(resolve_target(target), output, docker=docker, apptainer=apptainer,
                        gpu=not cpu, base=base, notebook=notebook, requirements=requirements,
                        ca_certs=ca_certs, system_python=system_python)
    for path in ctx.written:
        click.echo(str(path))


@main.command()
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


@main.command()
@click.argument("target")
@click.option("--notebook", type=click.Path(dir_okay=False, path_type=Path),
              help="Local notebook file instead of the config's notebook_url.")
@click.option("--sections", help="Sections to remove (default: the config's).")
@click.option("-p", "--parameter", "values", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Check a value against its field (repeatable); prints the typed values.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def params(target: str, notebook: Path | None, sections: str | None,
           values: tuple[tuple[str, str], ...], as_json: bool) -> None:
    """List the notebook's form fields (papermill parameters), or check values with -p."""
    from ..catalogue.sources import target_params
    from ..notebooks.params import spec_to_dict, validate_values
    from ..table import format_table

    specs = target_params(target, notebook=notebook, sections=sections)
    if values:
        _print_json(validate_values(specs, dict(values)))
        return
    if as_json:
        _print_json([spec_to_dict(s) for s in specs])
        return
    rows = [(s.section, s.name, s.type, repr(s.default), s.allowed()) for s in specs]
    for line in format_table(("SECTION", "NAME", "TYPE", "DEFAULT", "ALLOWED"), rows,
                             max_width={"NAME": 40, "DEFAULT": 32}):
        click.echo(line)


def _progress(verbose: bool):
    from ..progress import Progress

    return Progress(verbose=verbose)


def _cache_option(func):
    return click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path),
                        help="Image cache folder (default $HPC_DL4MIC_CACHE or "
                             "~/.cache/hpc-dl4mic/images).")(func)


def _profile_file_option(func):
    return click.option("--profile-file", type=click.Path(dir_okay=False, path_type=Path),
                        help="Profiles file (default ~/.config/hpc-dl4mic/profiles.yaml).")(func)


@main.command()
@click.argument("target")
@_common_build_options
@_cache_option
@click.option("--def-only", is_flag=True, help="Print the definition file and stop.")
@click.option("--force", is_flag=True, help="Rebuild even when the cache has the image.")
@click.option("--fakeroot/--no-fakeroot", default=None,
              help="apptainer build --fakeroot (default: when not root).")
@click.option("--on", "on_profile", metavar="PROFILE",
              help="Build on this cluster over SSH, into the profile's cache dir.")
@click.option("--build-on", type=click.Choice(["slurm", "login"]),
              help="With --on: a SLURM build job or the login node (default: the profile's).")
@click.option("--accept-new-host-key", is_flag=True,
              help="Trust and remember an unknown SSH host key.")
@_profile_file_option
@click.option("-v", "--verbose", is_flag=True, help="Show apptainer's output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build(target: str, base: str | None, cpu: bool, notebook: Path | None,
          requirements: Path | None, ca_certs: Path | None, system_python: bool,
          cache_dir: Path | None, def_only: bool, force: bool, fakeroot: bool | None,
          on_profile: str | None, build_on: str | None, accept_new_host_key: bool,
          profile_file: Path | None, verbose: bool, as_json: bool) -> None:
    """Build TARGET's SIF image (or find it in the cache) and print its path."""
    from ..catalogue.config import resolve_target
    from ..images.build import (
        build_image,
        build_image_remote,
        prepare_notebook_image,
        remote_base_digest,
    )
    from ..images.cache import ImageCache

    config = resolve_target(target)
    options = dict(notebook=notebook, requirements=requirements, base=base, gpu=not cpu,
                   ca_certs=ca_certs, system_python=system_python)
    if on_profile:
        from ..remote.profiles import get_profile
        from ..sessions.records import open_connection

        profile = get_profile(on_profile, profile_file)
        with open_connection(profile, accept_new_host_key=accept_new_host_key) as conn:
            inputs = prepare_notebook_image(config, digest=remote_base_digest(conn), **options)
            if def_only:
                click.echo(inputs.definition, nl=False)
                return
            result = build_image_remote(inputs, conn, profile, mode=build_on, fakeroot=fakeroot,
                                        progress=_progress(verbose), force=force)
    else:
        inputs = prepare_notebook_image(config, **options)
        if def_only:
            click.echo(inputs.definition, nl=False)
            return
        result = build_image(inputs, ImageCache(cache_dir), fakeroot=fakeroot,
                             progress=_progress(verbose), force=force)
    if as_json:
        _print_json(result.to_dict())
    else:
        state = "cached" if result.cached else f"built in {result.seconds:.0f} s"
        click.echo(f"{result.path}", nl=True)
        click.echo(f"{result.name} {result.key[:16]} ({state})", err=True)


@main.command("base")
@click.option("--suite", default="bookworm", show_default=True, help="Debian suite.")
@click.option("--mirror", help="Debian mirror URL (default deb.debian.org).")
@click.option("--ca-certs", type=click.Path(path_type=Path), metavar="DIR",
              help="Site CA certificates (*.crt) to install in the image.")
@_cache_option
@click.option("-v", "--verbose", is_flag=True, help="Show apptainer's output.")
def base_cmd(suite: str, mirror: str | None, ca_certs: Path | None, cache_dir: Path | None,
             verbose: bool) -> None:
    """Build the small offline Debian base image and print its path.

    Notebook images start from it with --base localimage:PATH (no registry needed).
    """
    from ..images.build import build_image, prepare_base_image
    from ..images.cache import ImageCache

    result = build_image(prepare_base_image(suite, mirror, ca_certs=ca_certs),
                         ImageCache(cache_dir), progress=_progress(verbose))
    click.echo(str(result.path))


@main.group("cache", cls=Group)
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
@_cache_option
@click.option("-v", "--verbose", is_flag=True, help="Show apptainer's output.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def cache_build(names: tuple[str, ...], build_all: bool, notebook_dir: Path | None,
                requirements_dir: Path | None, base: str | None, ca_certs: Path | None,
                system_python: bool, cache_dir: Path | None, verbose: bool,
                as_json: bool) -> None:
    """Pre-build images for NAMES (or --all); continue past failures, report them at the end."""
    from ..catalogue.config import catalogue, load_config, resolve_target
    from ..errors import InputError
    from ..images.build import build_many
    from ..images.cache import ImageCache

    if build_all == bool(names):
        raise InputError("give notebook NAMES or --all (not both)")
    configs = ([load_config(e.path, name=e.name, group=e.group) for e in catalogue()]
               if build_all else [resolve_target(n) for n in names])
    outcome = build_many(configs, ImageCache(cache_dir), notebook_dir=notebook_dir,
                         requirements_dir=requirements_dir, progress=_progress(verbose),
                         base=base, ca_certs=ca_certs, system_python=system_python)
    if as_json:
        _print_json(outcome.to_dict())
    else:
        for item in outcome.built:
            click.echo(f"ok      {item.name:<28} {item.path}")
        for name, error in outcome.failed:
            click.echo(f"FAILED  {name:<28} {error}")
        click.echo(f"{len(outcome.built)} built or cached, {len(outcome.failed)} failed", err=True)
    if outcome.failed:
        sys.exit(1)


@cache_group.command("list")
@_cache_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_list(cache_dir: Path | None, as_json: bool) -> None:
    """List the images in the cache (name, key, size, date, labels)."""
    import datetime

    from ..images.cache import ImageCache
    from ..table import format_table

    cache = ImageCache.existing(cache_dir)
    records = cache.records()
    if as_json:
        _print_json([r.to_dict() for r in records])
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
@_cache_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cache_verify(cache_dir: Path | None, as_json: bool) -> None:
    """Check every image's size, checksum and key label; exit 1 if any is bad."""
    from ..images.build import verify_cache
    from ..images.cache import ImageCache

    results = verify_cache(ImageCache.existing(cache_dir))
    if as_json:
        _print_json([r.to_dict() for r in results])
    else:
        for r in results:
            click.echo(f"{'ok' if r.ok else 'BAD':<4} {r.path.name}"
                       + ("" if r.ok else f": {'; '.join(r.problems)}"))
    if any(not r.ok for r in results):
        sys.exit(1)


@cache_group.command("prune")
@_cache_option
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


@main.group("profile", cls=Group)
def profile_group() -> None:
    """Cluster profiles (~/.config/hpc-dl4mic/profiles.yaml)."""


@profile_group.command("list")
@_profile_file_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def profile_list(profile_file: Path | None, as_json: bool) -> None:
    """List profiles (the built-in `localhost` is the local test cluster)."""
    from ..remote.profiles import load_profiles

    profiles = load_profiles(profile_file,
                             warn=lambda line: click.echo(f"hpc-dl4mic: warning: {line}",
                                                          err=True))
    if as_json:
        _print_json([p.to_dict() for p in profiles.values()])
        return
    for p in profiles.values():
        where = f"{p.user + '@' if p.user else ''}{p.host}{':' + str(p.port) if p.port else ''}"
        click.echo(f"{p.name:<16} {where}{'  (built-in)' if p.builtin else ''}")


@profile_group.command("show")
@click.argument("name")
@_profile_file_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def profile_show(name: str, profile_file: Path | None, as_json: bool) -> None:
    """Show one profile."""
    from ..remote.profiles import get_profile

    data = get_profile(name, profile_file).to_dict()
    if as_json:
        _print_json(data)
        return
    for key, value in data.items():
        click.echo(f"{key + ':':<14} {value}")


@profile_group.command("test")
@click.argument("name")
@_profile_file_option
@click.option("--accept-new-host-key", is_flag=True,
              help="Trust and remember an unknown SSH host key.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def profile_test(name: str, profile_file: Path | None, accept_new_host_key: bool,
                 as_json: bool) -> None:
    """Connect and check sbatch, apptainer and the cluster folders; exit 1 if any is missing."""
    from ..remote.profiles import check_profile, get_profile
    from ..sessions.records import open_connection

    profile = get_profile(name, profile_file)
    with open_connection(profile, accept_new_host_key=accept_new_host_key) as conn:
        checks = check_profile(profile, conn)
    if as_json:
        _print_json([c.__dict__ for c in checks])
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
@click.option("--partition")
@click.option("--account")
@click.option("--qos")
@click.option("--gres", help="e.g. gpu:1")
@click.option("--gpus", help="e.g. 1 or a100:1 (--gpus)")
@click.option("--cpus", type=int)
@click.option("--mem", help="e.g. 32G")
@click.option("--time", "time_",
              help="Walltime: [D-]HH:MM:SS, HH:MM, MINUTES, D-HH or D-HH:MM (e.g. 04:00:00).")
@click.option("--module", "modules", multiple=True, help="`module load` this (repeatable).")
@click.option("--sbatch-extra", multiple=True, help="Extra #SBATCH option (repeatable).")
@click.option("--data-dir", help="Default data folder on the cluster.")
@click.option("--results-dir", help="Default results folder on the cluster.")
@click.option("--known-hosts", help="known_hosts file for this cluster's host keys.")
@click.option("--node-internet", is_flag=True, help="The compute nodes have internet.")
@_profile_file_option
def profile_add(name: str, profile_file: Path | None, time_: str | None,
                modules: tuple[str, ...], sbatch_extra: tuple[str, ...], **values) -> None:
    """Add or replace profile NAME."""
    from ..remote.profiles import Profile, save_profile

    path = save_profile(Profile(name=name, time=time_, modules=modules,
                                sbatch_extra=sbatch_extra, **values), profile_file)
    click.echo(f"saved profile {name} in {path}")


@profile_group.command("remove")
@click.argument("name")
@_profile_file_option
def profile_remove(name: str, profile_file: Path | None) -> None:
    """Remove profile NAME from the profiles file."""
    from ..remote.profiles import remove_profile

    path = remove_profile(name, profile_file)
    click.echo(f"removed profile {name} from {path}")


def _ask_cancel(question: str) -> bool:
    if not sys.stdin.isatty():
        return False  # no TTY (CI, scripts): never prompt, keep the job
    try:
        return click.confirm(question, default=False, err=True)
    except (click.Abort, EOFError):
        return False


def _on_ready(no_browser: bool):
    def show(url: str) -> None:
        click.echo(url)
        sys.stdout.flush()
        if not no_browser:
            import webbrowser

            webbrowser.open(url)

    return show


def _job_options(func):
    for option in reversed([
        click.option("--partition", help="SLURM partition."),
        click.option("--time", "time_", help="Walltime, e.g. 02:00:00."),
        click.option("--gres", help="Generic resources, e.g. gpu:1."),
        click.option("--gpus", help="GPUs (sbatch --gpus), e.g. 1 or a100:1."),
        click.option("--cpus", type=int, help="CPUs per task."),
        click.option("--mem", help="Memory, e.g. 32G."),
        click.option("--account", help="SLURM account."),
        click.option("--qos", help="SLURM QOS."),
    ]):
        func = option(func)
    return func


def _attach_options(func):
    for option in reversed([
        click.option("--port", "local_port", type=int, default=0,
                     help="Local port for the tunnel (default: a free one)."),
        click.option("--no-browser", is_flag=True, help="Do not open a browser."),
        click.option("--cancel-on-exit", is_flag=True,
                     help="Cancel the job when this command ends (default: keep it)."),
        click.option("--timeout", "ready_timeout", type=float, default=600.0,
                     show_default=True, help="Seconds to wait for Jupyter to be ready."),
        click.option("--tunnel", type=click.Choice(["paramiko", "openssh"]),
                     default="paramiko", show_default=True,
                     help="Forward through this command's SSH connection, or with the "
                          "system's `ssh -L` (faster bulk transfers; needs key/agent login)."),
    ]):
        func = option(func)
    return func


@main.command()
@click.argument("target")
@click.option("--profile", "profile_name", envvar="HPC_DL4MIC_PROFILE",
              help="Cluster profile (default $HPC_DL4MIC_PROFILE).")
@click.option("--local", "run_local", is_flag=True,
              help="No cluster: run the same job script here with the local apptainer.")
@_common_build_options
@click.option("--data", help="Data folder on the cluster (bound at /data).")
@click.option("--results", help="Results folder on the cluster (bound at /results).")
@click.option("--upload", metavar="SRC[:DEST]",
              help="Copy local folder SRC to DATA/DEST first (default DEST: SRC's name; "
                   "unchanged files skipped); the notebook sees it at /data/DEST.")
@_job_options
@_attach_options
@click.option("--accept-new-host-key", is_flag=True,
              help="Trust and remember an unknown SSH host key.")
@_profile_file_option
@click.option("-v", "--verbose", is_flag=True, help="Show build output.")
def submit(target: str, profile_name: str | None, run_local: bool, base: str | None,
           cpu: bool, notebook: Path | None, requirements: Path | None,
           ca_certs: Path | None, system_python: bool,
           data: str | None, results: str | None, upload: str | None, partition: str | None,
           time_: str | None, gres: str | None, gpus: str | None, cpus: int | None,
           mem: str | None, account: str | None, qos: str | None, local_port: int,
           no_browser: bool, cancel_on_exit: bool, ready_timeout: float, tunnel: str,
           accept_new_host_key: bool, profile_file: Path | None, verbose: bool) -> None:
    """Run TARGET's Jupyter in a SLURM job on the cluster and tunnel it here.

    Prints the URL (with its token) when Jupyter answers and keeps the tunnel open until
    Ctrl-C; the job keeps running unless --cancel-on-exit (or you say so when asked).
    With --local the same job script runs on this machine (no SLURM, no SSH).
    """
    from ..sessions.launch import submit_and_attach

    reason = submit_and_attach(
        target, profile_name=profile_name, run_local=run_local, profile_file=profile_file,
        build=dict(notebook=notebook, requirements=requirements, base=base, gpu=not cpu,
                   ca_certs=ca_certs, system_python=system_python),
        options=dict(data=data, results=results, upload=upload, partition=partition,
                     time=time_, gres=gres, gpus=gpus, cpus=cpus, mem=mem, account=account,
                     qos=qos, ready_timeout=ready_timeout, local_port=local_port),
        accept_new_host_key=accept_new_host_key, say=_progress(True),
        build_progress=_progress(verbose), on_ready=_on_ready(no_browser),
        cancel_on_exit=cancel_on_exit, ask_cancel=_ask_cancel, tunnel=tunnel)
    _exit_for(reason)


def _exit_for(reason: str) -> None:
    """Exit codes of an attached command: 0 when Jupyter was shut down (COMPLETED), 1 when
    the job ended otherwise (TIMEOUT, FAILED, ...), 130 on Ctrl-C."""
    if reason == "interrupted":
        sys.exit(EXIT_INTERRUPTED)
    if reason == "job-failed":
        sys.exit(1)


@main.command()
@click.argument("session_id", metavar="SESSION")
@_attach_options
@click.option("--accept-new-host-key", is_flag=True,
              help="Trust and remember an unknown SSH host key.")
def connect(session_id: str, local_port: int, no_browser: bool, cancel_on_exit: bool,
            ready_timeout: float, tunnel: str, accept_new_host_key: bool) -> None:
    """Re-open the tunnel to a running session's Jupyter."""
    from ..sessions.attach import run_attached
    from ..sessions.records import find_session, open_connection, session_profile

    session = find_session(session_id)
    with open_connection(session_profile(session),
                         accept_new_host_key=accept_new_host_key) as conn:
        reason = run_attached(conn, session, ready_timeout=ready_timeout, local_port=local_port,
                              say=_progress(True), on_ready=_on_ready(no_browser),
                              cancel_on_exit=cancel_on_exit, ask_cancel=_ask_cancel,
                              tunnel=tunnel, reconnect=True)
    _exit_for(reason)


@main.command()
@click.argument("session_id", metavar="[SESSION]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also sessions that have ended.")
def status(session_id: str | None, as_json: bool, show_all: bool) -> None:
    """Sessions and their job states (asks SLURM about the active ones)."""
    from ..sessions.records import ACTIVE_STATES, find_session, load_sessions, seconds_left
    from ..sessions.results import refresh_all

    sessions = [find_session(session_id)] if session_id else load_sessions()
    refresh_all(sessions, warn=lambda line: click.echo(f"hpc-dl4mic: {line}", err=True))
    shown = sessions if (show_all or session_id) else [s for s in sessions
                                                       if s.state in ACTIVE_STATES]
    if as_json:
        _print_json([s.to_dict() for s in shown])
        return
    if not shown:
        click.echo("no active sessions (--all shows ended ones)", err=True)
    for s in shown:
        left = seconds_left(s.end_time)
        remaining = f"{left / 60:.0f} min left" if left is not None and left > 0 else ""
        click.echo(f"{s.id:<44} job {s.job_id:<8} {s.state:<10} {s.profile:<12} "
                   f"{s.node or '-':<10} {remaining}")


@main.command()
@click.argument("session_id", metavar="SESSION")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
def logs(session_id: str, follow: bool) -> None:
    """Print a session's job log."""
    from ..sessions.records import find_session, open_connection, session_profile
    from ..sessions.results import print_log

    session = find_session(session_id)
    with open_connection(session_profile(session)) as conn:
        print_log(conn, session, follow=follow, write=lambda text: click.echo(text, nl=False))


@main.command()
@click.argument("session_id", metavar="SESSION")
def cancel(session_id: str) -> None:
    """Cancel a session's job."""
    from ..sessions.records import find_session, open_connection, session_profile
    from ..sessions.results import cancel as cancel_session

    session = find_session(session_id)
    with open_connection(session_profile(session)) as conn:
        session = cancel_session(conn, session)
    click.echo(f"job {session.job_id}: {session.state}")


@main.command()
@click.argument("session_id", metavar="SESSION")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Local folder (default ./SESSION).")
def fetch(session_id: str, dest: Path | None) -> None:
    """Copy a session's results folder from the cluster (resumable, checksummed)."""
    from ..sessions.records import find_session, open_connection, session_profile
    from ..sessions.results import fetch as fetch_results

    session = find_session(session_id)
    with open_connection(session_profile(session)) as conn:
        files = fetch_results(conn, session, dest or Path(session.id), say=_progress(True))
    click.echo(f"{len(files)} file(s) fetched into {dest or session.id}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
