"""Session commands: submit, connect, status, logs, cancel, fetch."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..jobs.resources import JobResources
from .common import (
    accept_host_key_option,
    apply,
    build_options,
    exit_for,
    print_json,
    profile_file_option,
    progress,
    resource_options,
)


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
            from ..sessions.records import open_in_browser

            open_in_browser(url)

    return show


attach_options = apply([
    click.option("--port", "local_port", type=int, default=0,
                 help="Local port for the tunnel (default: a free one)."),
    click.option("--no-browser", is_flag=True, help="Do not open a browser."),
    click.option("--cancel-on-exit", is_flag=True,
                 help="Cancel the job when this command ends (default: keep it)."),
    click.option("--timeout", "ready_timeout", type=float, default=600.0,
                 show_default=True, help="Seconds to wait for Jupyter to be ready."),
    click.option("--forward", type=int, multiple=True, metavar="PORT",
                 help="Also forward this port of the job's node (e.g. TensorBoard's 6006; "
                      "repeatable; the config's hpc_dl4mic.extra_ports are added)."),
    click.option("--tunnel", type=click.Choice(["paramiko", "openssh"]),
                 default="paramiko", show_default=True,
                 help="Forward through this command's SSH connection, or with the "
                      "system's `ssh -L` (faster bulk transfers; needs key/agent login)."),
])


@click.command()
@click.argument("target")
@click.option("--profile", "profile_name", envvar="HPC_DL4MIC_PROFILE",
              help="Cluster profile (default $HPC_DL4MIC_PROFILE).")
@click.option("--local", "run_local", is_flag=True,
              help="No cluster: run the same job script here with the local apptainer.")
@build_options
@click.option("--data", help="Data folder on the cluster (bound at /data).")
@click.option("--results", help="Results folder on the cluster (bound at /results).")
@click.option("--upload", metavar="SRC[:DEST]",
              help="Copy local folder SRC to DATA/DEST first (default DEST: SRC's name; "
                   "unchanged files skipped); the notebook sees it at /data/DEST.")
@resource_options
@attach_options
@click.option("--check-gpu", is_flag=True,
              help="Run `check-gpu` first (a short job); submit only when it passes.")
@accept_host_key_option
@profile_file_option
@click.option("-v", "--verbose", is_flag=True, help="Show build output.")
def submit(target: str, profile_name: str | None, run_local: bool, base: str | None,
           cpu: bool, notebook: Path | None, requirements: Path | None,
           ca_certs: Path | None, system_python: bool,
           data: str | None, results: str | None, upload: str | None,
           resources: JobResources, local_port: int,
           no_browser: bool, cancel_on_exit: bool, ready_timeout: float,
           forward: tuple[int, ...], tunnel: str, check_gpu: bool,
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
        options=dict(data=data, results=results, upload=upload, resources=resources,
                     ready_timeout=ready_timeout, local_port=local_port, forward=forward),
        accept_new_host_key=accept_new_host_key, say=progress(True),
        build_progress=progress(verbose), on_ready=_on_ready(no_browser),
        cancel_on_exit=cancel_on_exit, ask_cancel=_ask_cancel, tunnel=tunnel,
        check_gpu=check_gpu)
    exit_for(reason)


@click.command()
@click.argument("session_id", metavar="SESSION")
@attach_options
@accept_host_key_option
def connect(session_id: str, local_port: int, no_browser: bool, cancel_on_exit: bool,
            ready_timeout: float, forward: tuple[int, ...], tunnel: str,
            accept_new_host_key: bool) -> None:
    """Re-open the tunnel to a running session's Jupyter."""
    from ..sessions.attach import reconnect

    exit_for(reconnect(session_id, accept_new_host_key=accept_new_host_key, forward=forward,
                       ready_timeout=ready_timeout, local_port=local_port, say=progress(True),
                       on_ready=_on_ready(no_browser), cancel_on_exit=cancel_on_exit,
                       ask_cancel=_ask_cancel, tunnel=tunnel))


@click.command()
@click.argument("session_id", metavar="[SESSION]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also sessions that have ended.")
def status(session_id: str | None, as_json: bool, show_all: bool) -> None:
    """Sessions and their job states (asks SLURM about the active ones)."""
    from ..sessions.records import seconds_left
    from ..sessions.results import list_sessions

    shown = list_sessions(session_id, show_all=show_all,
                          warn=lambda line: click.echo(f"hpc-dl4mic: {line}", err=True))
    if as_json:
        print_json([s.to_dict() for s in shown])
        return
    if not shown:
        click.echo("no active sessions (--all shows ended ones)", err=True)
    for s in shown:
        left = seconds_left(s.end_time)
        remaining = f"{left / 60:.0f} min left" if left is not None and left > 0 else ""
        click.echo(f"{s.id:<44} job {s.job_id:<8} {s.state:<10} {s.profile:<12} "
                   f"{s.node or '-':<10} {remaining}")


@click.command()
@click.argument("session_id", metavar="SESSION")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
def logs(session_id: str, follow: bool) -> None:
    """Print a session's job log."""
    from ..sessions.results import show_log

    show_log(session_id, follow=follow, write=lambda text: click.echo(text, nl=False))


@click.command()
@click.argument("session_id", metavar="SESSION")
def cancel(session_id: str) -> None:
    """Cancel a session's job."""
    from ..sessions.results import cancel_session

    session = cancel_session(session_id)
    click.echo(f"job {session.job_id}: {session.state}")


@click.command()
@click.argument("session_id", metavar="SESSION")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Local folder (default ./SESSION).")
def fetch(session_id: str, dest: Path | None) -> None:
    """Copy a session's results folder from the cluster (resumable, checksummed)."""
    from ..sessions.results import fetch_session

    files, folder = fetch_session(session_id, dest, say=progress(True))
    click.echo(f"{len(files)} file(s) fetched into {folder}", err=True)


@click.command("run")
@click.argument("target")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--profile", "profile_name", envvar="HPC_DL4MIC_PROFILE",
              help="Cluster profile (default $HPC_DL4MIC_PROFILE).")
@click.option("--local", "run_local", is_flag=True,
              help="No cluster: run the same job script here with the local apptainer.")
@build_options
@click.option("--data", help="Data folder on the cluster (bound at /data).")
@click.option("--results", help="Results folder on the cluster (the run's own folder in it "
                                "is /results and the working directory).")
@click.option("--upload", metavar="SRC[:DEST]",
              help="Copy local folder SRC to DATA/DEST first (unchanged files skipped).")
@resource_options
@click.option("--detach", is_flag=True, help="Return once submitted (see `logs`, `status`).")
@accept_host_key_option
@profile_file_option
@click.option("-v", "--verbose", is_flag=True, help="Show build output.")
def run(target: str, command: tuple[str, ...], profile_name: str | None, run_local: bool,
        base: str | None, cpu: bool, notebook: Path | None, requirements: Path | None,
        ca_certs: Path | None, system_python: bool, data: str | None, results: str | None,
        upload: str | None, resources: JobResources, detach: bool,
        accept_new_host_key: bool, profile_file: Path | None, verbose: bool) -> None:
    """Run COMMAND inside TARGET's image as a job and follow its log:
    `hpc-dl4mic run TARGET [OPTIONS] -- COMMAND ARGS...`.

    Exits with 0 when the command exits 0, else 1 (its exit code is printed). `status`,
    `logs`, `cancel` and `fetch` work on the run as on a session.
    """
    from ..sessions.command import start_command

    session, code = start_command(
        target, command, profile_name=profile_name, run_local=run_local,
        profile_file=profile_file,
        build=dict(notebook=notebook, requirements=requirements, base=base, gpu=not cpu,
                   ca_certs=ca_certs, system_python=system_python),
        options=dict(data=data, results=results, upload=upload, resources=resources),
        detach=detach, accept_new_host_key=accept_new_host_key, say=progress(True),
        build_progress=progress(verbose), write=lambda text: click.echo(text, nl=False))
    if detach:
        click.echo(session.id)
    elif code != 0:
        sys.exit(1)


COMMANDS = (submit, connect, status, logs, cancel, fetch, run)
