"""Batch commands: ``batch TARGET`` (= ``batch submit``), status, rerun, fetch, report,
cancel, list."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..jobs.resources import JobResources
from .common import (
    accept_host_key_option,
    build_options,
    print_json,
    profile_file_option,
    progress,
    resource_options,
)


class BatchGroup(click.Group):
    """``batch TARGET ...`` is ``batch submit TARGET ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["submit", *args]
        return super().parse_args(ctx, args)


@click.group("batch", cls=BatchGroup)
def batch_group() -> None:
    """Run TARGET's notebook headless over parameter sweeps, as SLURM job arrays.

    `hpc-dl4mic batch TARGET [-p NAME VALUE]... [--sweep sweep.yaml]` starts a run (see
    `batch submit --help`); `batch status RUN` shows its tasks.
    """


@batch_group.command("submit")
@click.argument("target")
@click.option("--profile", "profile_name", envvar="HPC_DL4MIC_PROFILE",
              help="Cluster profile (default $HPC_DL4MIC_PROFILE).")
@click.option("--local", "run_local", is_flag=True,
              help="No cluster: run the tasks here, one after another.")
@click.option("-p", "--param", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A notebook field's value for every task (repeatable).")
@click.option("-f", "--params-file", "values_file", type=click.Path(dir_okay=False,
              path_type=Path), help="YAML file NAME: VALUE for every task.")
@click.option("--sweep", "sweep_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML file with grid: (every combination) and/or rows: (one task each).")
@click.option("--skip-sections", default="", metavar="'5.3. 6.2.'",
              help="Further notebook sections to remove for this run.")
@click.option("--max-parallel", type=int, help="At most N tasks at once (SLURM's %N).")
@click.option("--task-timeout", metavar="DURATION",
              help="End a task after this long (the --time forms).")
@click.option("--retries", type=int, default=0, show_default=True,
              help="Requeue a task up to N times after a node failure or preemption.")
@build_options
@click.option("--data", help="Data folder on the cluster (bound at /data).")
@click.option("--results", help="Results folder on the cluster (runs go to RESULTS/batch/).")
@click.option("--upload", metavar="SRC[:DEST]",
              help="Copy local folder SRC to DATA/DEST first (unchanged files skipped).")
@resource_options
@click.option("--check-gpu", is_flag=True,
              help="Run `check-gpu` first (a short job); submit only when it passes.")
@accept_host_key_option
@profile_file_option
@click.option("-v", "--verbose", is_flag=True, help="Show build output.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's record as JSON.")
def batch_submit(target: str, profile_name: str | None, run_local: bool,
                 params: tuple[tuple[str, str], ...], values_file: Path | None,
                 sweep_file: Path | None, skip_sections: str, max_parallel: int | None,
                 task_timeout: str | None, retries: int, base: str | None, cpu: bool,
                 notebook: Path | None, requirements: Path | None, ca_certs: Path | None,
                 system_python: bool, data: str | None, results: str | None,
                 upload: str | None, resources: JobResources, check_gpu: bool,
                 accept_new_host_key: bool, profile_file: Path | None, verbose: bool,
                 as_json: bool) -> None:
    """Start a batch run of TARGET's notebook: one task per combination, each checked here
    against the notebook's fields before anything is sent. Prints the run id."""
    from ..batch.launch import BatchOptions, start_batch

    run = start_batch(
        target, profile_name=profile_name, run_local=run_local, profile_file=profile_file,
        build=dict(notebook=notebook, requirements=requirements, base=base, gpu=not cpu,
                   ca_certs=ca_certs, system_python=system_python),
        options=BatchOptions(params=params, values_file=values_file, sweep_file=sweep_file,
                             skip_sections=skip_sections, resources=resources,
                             max_parallel=max_parallel, task_timeout=task_timeout,
                             retries=retries, data=data, results=results, upload=upload,
                             check_gpu=check_gpu),
        accept_new_host_key=accept_new_host_key, say=progress(True),
        build_progress=progress(verbose))
    if as_json:
        print_json(run.to_dict())
    else:
        click.echo(run.id)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


@batch_group.command("status")
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the tasks as JSON.")
def batch_status(run_id: str, as_json: bool) -> None:
    """A table of RUN's tasks: the parameters that vary, state, duration, node, error."""
    from ..batch.results import run_status
    from ..batch.status import counts
    from ..table import format_table

    run, rows, accounted = run_status(run_id)
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    head = ("TASK", *run.varying, "STATE", "DURATION", "NODE", "CELL / ERROR")
    table = [(str(r.index), *(repr(r.params[n]) if n in r.params else "-" for n in run.varying),
              r.state,
              _duration(r.duration), r.node or "-",
              " - ".join(x for x in (r.cell, r.error, r.note) if x) or "") for r in rows]
    for line in format_table(head, table, max_width={"CELL / ERROR": 70}):
        click.echo(line)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts(rows).items()))
    click.echo(f"{run.id}: {summary or 'no tasks'}"
               + ("" if accounted else " (no SLURM accounting: states of tasks that ended "
                  "long ago come from their status files)"), err=True)


@batch_group.command("rerun")
@click.argument("run_id", metavar="RUN")
@click.option("--failed", is_flag=True, help="Every task that did not complete.")
@click.option("--index", "indices", type=int, multiple=True, help="Task N (repeatable).")
def batch_rerun(run_id: str, failed: bool, indices: tuple[int, ...]) -> None:
    """Resubmit RUN's failed tasks (--failed) or the tasks named with --index."""
    from ..batch.results import rerun_run

    _, chosen = rerun_run(run_id, failed=failed, indices=indices, say=progress(True))
    if chosen:
        click.echo(" ".join(map(str, chosen)))


@batch_group.command("fetch")
@click.argument("run_id", metavar="RUN")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Local folder (default ./RUN).")
def batch_fetch(run_id: str, dest: Path | None) -> None:
    """Copy RUN's folder here (executed notebooks, outputs, logs) and write summary.csv and
    summary.json; resumable, checksummed, unchanged files skipped."""
    from ..batch.results import fetch_run

    _, folder, copied = fetch_run(run_id, dest, say=progress(True))
    click.echo(f"{copied} file(s) fetched into {folder}; summary: {folder / 'summary.csv'}",
               err=True)


@batch_group.command("report")
@click.argument("run_id", metavar="RUN")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="The fetched folder (default ./RUN).")
def batch_report(run_id: str, dest: Path | None) -> None:
    """Write report.html (the task table and the training curves) in RUN's fetched folder."""
    from ..batch.results import report_run

    click.echo(str(report_run(run_id, dest)))


@batch_group.command("cancel")
@click.argument("run_id", metavar="RUN")
def batch_cancel(run_id: str) -> None:
    """Cancel every job of RUN."""
    from ..batch.results import cancel_run

    run = cancel_run(run_id)
    click.echo(f"{run.id}: cancelled job(s) {', '.join(j.job_id for j in run.jobs)}", err=True)


@batch_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def batch_list(as_json: bool) -> None:
    """The batch runs started from this machine, newest first."""
    import datetime

    from ..batch.results import list_runs
    from ..table import format_table

    runs = list_runs()
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    if not runs:
        click.echo("no batch runs", err=True)
        sys.exit(0)
    rows = [(r.id, r.profile, str(len(r.tasks)), r.state,
             datetime.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M"))
            for r in runs]
    for line in format_table(("RUN", "PROFILE", "TASKS", "STATE", "CREATED"), rows):
        click.echo(line)


COMMANDS = (batch_group,)
