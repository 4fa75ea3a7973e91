"""The batch commands after the start, by run id: list, status, rerun, cancel, fetch (with
``summary.csv``/``summary.json``) and report (an HTML page)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError, RemoteError
from .runs import BatchRun, find_run, load_runs, save_run
from .status import ENDED, FAILED_STATES, TaskRow, task_rows

if TYPE_CHECKING:
    from ..remote.host import Host
    from ..remote.profiles import Profile

Say = Callable[[str], None]


def run_profile(run: BatchRun) -> Profile:
    """The profile the run was started with (the pseudo-profile for ``--local``)."""
    from ..remote.hosts import LOCAL_PROFILE, local_profile
    from ..remote.profiles import get_profile

    if run.profile == LOCAL_PROFILE:
        return local_profile()
    return get_profile(run.profile, Path(run.profile_file) if run.profile_file else None)


def run_host(run: BatchRun, *, accept_new_host_key: bool = False) -> Host:
    """The host the run's jobs run on, connected (a context manager that closes it)."""
    from ..remote.hosts import open_host

    return open_host(run_profile(run), accept_new_host_key=accept_new_host_key)


def _note_end(run: BatchRun, rows: list[TaskRow]) -> None:
    state = "ENDED" if rows and all(r.state in ENDED for r in rows) else "SUBMITTED"
    if run.state != "CANCELLED" and state != run.state:
        run.state = state
        save_run(run)


def list_runs() -> list[BatchRun]:
    """``batch list``: the runs this machine started, newest first."""
    return load_runs()


def run_status(ident: str) -> tuple[BatchRun, list[TaskRow], bool]:
    """``batch status``: the run, its tasks' rows and whether accounting answered."""
    run = find_run(ident)
    with run_host(run) as host:
        rows, accounted = task_rows(host, run)
    _note_end(run, rows)
    return run, rows, accounted


def rerun_run(ident: str, *, failed: bool = False, indices: tuple[int, ...] = (),
              say: Say) -> tuple[BatchRun, list[int]]:
    """``batch rerun``: resubmit the failed tasks (``failed``) and/or ``indices``; the
    indices resubmitted. Tasks still pending or running are refused."""
    from .launch import rerun

    if not failed and not indices:
        raise InputError("name what to rerun: --failed and/or --index N")
    run = find_run(ident)
    known = {int(t["index"]) for t in run.tasks}
    unknown = sorted(set(indices) - known)
    if unknown:
        raise InputError(f"--index {unknown[0]}: run {run.id} has tasks 0-{len(known) - 1}")
    with run_host(run) as host:
        rows, _ = task_rows(host, run)
        busy = [r.index for r in rows if r.index in indices and r.state not in ENDED]
        if busy:
            raise InputError(f"--index {busy[0]}: task {busy[0]} is still "
                             f"{next(r.state for r in rows if r.index == busy[0])}")
        chosen = sorted({*indices, *(r.index for r in rows
                                     if failed and r.state in FAILED_STATES)})
        if not chosen:
            say("no failed tasks: nothing to rerun")
            return run, []
        rerun(run, host, run_profile(run), chosen, say=say)
    return run, chosen


def cancel_run(ident: str) -> BatchRun:
    """``batch cancel``: cancel every job of the run."""
    run = find_run(ident)
    with run_host(run) as host:
        jobs = host.scheduler()
        for job in dict.fromkeys(j.job_id for j in run.jobs):
            jobs.cancel(job)
    run.state = "CANCELLED"
    save_run(run)
    return run


def fetch_run(ident: str, dest: Path | None, *, say: Say) -> tuple[BatchRun, Path, int]:
    """``batch fetch``: copy the run folder here (resumable, checksummed, unchanged files
    skipped) and write ``summary.csv``/``summary.json``; (run, folder, files copied)."""
    from .report import write_summary

    run = find_run(ident)
    folder = Path(dest) if dest is not None else Path(run.id)
    with run_host(run) as host:
        rows, _ = task_rows(host, run)
        info = host.stat(run.run_dir)
        if info is None or info.kind != "dir":
            raise RemoteError(f"{run.run_dir}: no run folder on {host.display}")
        report = host.get_tree(run.run_dir, folder, say=say)
    _note_end(run, rows)
    write_summary([r.to_dict() for r in rows], folder)
    return run, folder, len(report.copied)


def report_run(ident: str, fetched: Path | None) -> Path:
    """``batch report``: ``report.html`` in the fetched folder (``batch fetch`` first),
    from the tasks' states then and the curves they wrote."""
    import json

    from .report import write_report

    run = find_run(ident)
    folder = Path(fetched) if fetched is not None else Path(run.id)
    summary = folder / "summary.json"
    if not summary.is_file():
        raise InputError(f"{summary}: not found; run `hpc-dl4mic batch fetch {run.id}` first")
    rows = []
    for item in json.loads(summary.read_text()):
        params = {k.split(":", 1)[1]: v for k, v in item.items() if k.startswith("param:")}
        rows.append({**{k: v for k, v in item.items() if ":" not in k}, "params": params})
    return write_report(rows, folder, title=f"{run.config}: batch run {run.id}",
                        varying=run.varying)
