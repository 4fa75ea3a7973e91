"""The state of a batch run's tasks, from ONE ``squeue`` and ONE ``sacct`` call (the
scheduler's :meth:`array_states`) plus the tasks' status files (one command), also when
accounting is off. A task whose state nobody knows is ``unknown``, never done.

States: pending, running, completed, failed, timeout, cancelled, node_fail, preempted,
out_of_memory, lost (the runner was killed without a word), unknown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .runs import BatchRun

if TYPE_CHECKING:
    from ..jobs.scheduler import JobInfo
    from ..remote.host import Host

FINAL = ("completed", "failed", "timeout", "cancelled")
ENDED = (*FINAL, "node_fail", "preempted", "out_of_memory", "lost")
FAILED_STATES = tuple(s for s in ENDED if s != "completed")
SLURM_ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
                "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "STAGE_OUT", "SIGNALING")
SLURM_ENDED = {"COMPLETED": "completed", "FAILED": "failed", "TIMEOUT": "timeout",
               "DEADLINE": "timeout", "CANCELLED": "cancelled", "NODE_FAIL": "node_fail",
               "BOOT_FAIL": "node_fail", "PREEMPTED": "preempted",
               "OUT_OF_MEMORY": "out_of_memory"}
# why SLURM stopped a task, which the runner (that only saw a signal) cannot know
SLURM_KNOWS_BETTER = ("timeout", "node_fail", "preempted", "out_of_memory")

STATUS_PROGRAM = r"""
cd "$1" 2>/dev/null || exit 0
for f in tasks/*/status.json; do
    [ -f "$f" ] || continue
    d=${f#tasks/}
    printf '%s\t' "${d%/status.json}"
    head -c 65536 "$f" | tr -d '\n'
    printf '\n'
done
"""


@dataclass
class TaskRow:
    """One task as ``batch status`` shows it."""

    index: int
    params: dict[str, Any]
    state: str
    duration: float | None = None
    node: str = ""
    error: str = ""
    cell: str = ""
    job: str = ""  # the SLURM element (JOBID_ARRAYINDEX) or the job id
    slurm_state: str = ""
    note: str = ""  # e.g. the sections skipped offline
    detail: dict[str, Any] = field(default_factory=dict)  # the status file

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("detail")
        return out


def read_status_files(host: Host, run: BatchRun) -> dict[int, dict[str, Any]]:
    """Every task's ``status.json`` in one command; unreadable ones are left out."""
    result = host.run(["sh", "-c", STATUS_PROGRAM, "hpc-dl4mic", run.run_dir], check=False,
                      timeout=120)
    out: dict[int, dict[str, Any]] = {}
    for line in result.stdout.splitlines():
        index, _, text = line.partition("\t")
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if index.isdigit() and isinstance(data, dict):
            out[int(index)] = data
    return out


def task_state(status: Mapping[str, Any] | None, slurm: str | None,
               job_active: bool | None) -> str:
    """One task's state from its status file, SLURM's state of its element (None when
    SLURM does not say) and whether its job still runs (None: not known)."""
    said = (status or {}).get("state")
    slurm_state = SLURM_ENDED.get(slurm or "")
    if slurm in ("PENDING", "REQUEUED", "REQUEUE_HOLD"):
        return "pending"  # also a task requeued after a node failure: its old status is stale
    if said in FINAL:
        if said in ("cancelled", "timeout") and slurm_state in SLURM_KNOWS_BETTER:
            return slurm_state
        return said
    if slurm in SLURM_ACTIVE:
        return "running"
    if slurm_state is not None:
        if said == "running" and slurm_state in ("completed", "failed"):
            return "lost"  # the runner never wrote its end: killed (SIGKILL, OOM)
        return slurm_state
    if job_active:
        return "running" if said == "running" else "pending"
    return "lost" if said == "running" and job_active is False else "unknown"


def _error_text(status: Mapping[str, Any]) -> tuple[str, str]:
    error = status.get("error") or {}
    if not isinstance(error, dict):
        return str(error)[:300], ""
    text = ": ".join(str(x) for x in (error.get("name"), error.get("message")) if x)
    cell = status.get("cell")
    title = error.get("cell_title") or ""
    where = f"cell {cell}" if cell is not None and text else ""
    return text[:500], (f"{where}: {title}" if title and where else title or where)


def _skipped_note(status: Mapping[str, Any]) -> str:
    skipped = status.get("skipped")
    if not isinstance(skipped, list) or not skipped:
        return ""
    by_reason: dict[str, list[str]] = {}
    for s in skipped:
        entry = s if isinstance(s, dict) else {"section": s}
        label = ("report failed" if entry.get("reason") == "report failed"
                 else "skipped offline")
        by_reason.setdefault(label, []).append(str(entry.get("section", "?")))
    return "; ".join(f"{label}: {' '.join(dict.fromkeys(tokens))}"
                     for label, tokens in by_reason.items())


def rows_for(run: BatchRun, statuses: Mapping[int, Mapping[str, Any]],
             elements: Mapping[str, JobInfo], job_active: Mapping[str, bool | None],
             now: float | None = None) -> list[TaskRow]:
    """The table of ``run``'s tasks (pure: everything asked for is passed in)."""
    now = time.time() if now is None else now
    rows = []
    for task in run.tasks:
        index = int(task["index"])
        job = run.job_of(index)
        element = elements.get(job.element(index)) if job else None
        status = statuses.get(index)
        state = task_state(status, element.state if element else None,
                           job_active.get(job.job_id) if job else False)
        status = status or {}
        start, end = status.get("start"), status.get("end")
        duration = None
        if isinstance(start, (int, float)):
            duration = (end if isinstance(end, (int, float)) else now) - start
        error, cell = _error_text(status) if state != "completed" else ("", "")
        if not error and state in FAILED_STATES and element is not None:
            error = f"SLURM: {element.state}" + (f" ({element.reason})" if element.reason
                                                  and element.reason != "None" else "")
        rows.append(TaskRow(
            index=index, params=dict(task["params"]), state=state, duration=duration,
            node=str(status.get("node") or (element.node if element else "")), error=error,
            cell=cell, job=(job.element(index) if job and element else job.job_id if job
                            else ""), slurm_state=element.state if element else "",
            detail=dict(status)))
    return rows


def task_rows(host: Host, run: BatchRun) -> tuple[list[TaskRow], bool]:
    """``batch status``: (the tasks' rows, whether accounting answered)."""
    jobs = host.scheduler()
    job_ids = list(dict.fromkeys(j.job_id for j in run.jobs))
    elements, accounted = jobs.array_states(job_ids)
    known = {e.split("_")[0] for e in elements}
    active: dict[str, bool | None] = {}
    for job_id in job_ids:
        if job_id in known:
            active[job_id] = None  # its elements speak for it
            continue
        info = jobs.info(job_id)  # a scheduler without elements (--local), or forgotten
        active[job_id] = None if info is None else info.state in SLURM_ACTIVE
    return rows_for(run, read_status_files(host, run), elements, active), accounted


def counts(rows: list[TaskRow]) -> dict[str, int]:
    """How many tasks are in each state."""
    out: dict[str, int] = {}
    for row in rows:
        out[row.state] = out.get(row.state, 0) + 1
    return out
