"""What this machine remembers about batch runs: the :class:`BatchRun` record
(``$XDG_STATE_HOME/hpc-dl4mic/batch/<id>.json``, 0600) and the run folder's layout on the
host.

A run folder ``RESULTS/batch/<run-id>/`` holds ``params.jsonl`` (one line per task:
``{"index": i, "params": {...}}``), ``batch_task.py`` (the in-image runner), the batch
notebook when the run converted its own (``--skip-sections``), ``jobs/<n>/job.sbatch`` (one
folder per submitted array), ``logs/`` and ``tasks/<i>/`` (task ``i``'s ``/results`` and
working folder, with its ``status.json`` and ``executed.ipynb``).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..fsutil import atomic_write, state_home

PARAMS_FILE = "params.jsonl"
RUNNER_FILE = "batch_task.py"
NOTEBOOK_FILE = "notebook.batch.ipynb"
IN_IMAGE_RUN_DIR = "/hpc-dl4mic-run"  # where the job binds the run folder (read-only)


@dataclass
class ArrayJob:
    """One submission: its job id, the offset its array indices add, the task indices."""

    job_id: str
    offset: int
    indices: list[int]

    def element(self, index: int) -> str:
        """The SLURM element id of task ``index`` (``JOBID_ARRAYINDEX``)."""
        return f"{self.job_id}_{index - self.offset}"


@dataclass
class BatchRun:
    """What this machine remembers about one run."""

    id: str
    profile: str
    config: str
    image: str
    run_dir: str
    data_dir: str
    notebook: str  # the batch notebook's path inside the container
    tasks: list[dict[str, Any]]  # {"index", "params"}, as in params.jsonl
    varying: list[str]  # the parameters whose value differs between tasks
    created: float
    profile_file: str | None = None
    jobs: list[ArrayJob] = field(default_factory=list)
    max_parallel: int | None = None
    task_timeout: int = 0
    retries: int = 0
    resources: dict[str, Any] = field(default_factory=dict)  # the run's overrides
    state: str = "SUBMITTED"  # SUBMITTED | ENDED (every task ended) | CANCELLED

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BatchRun:
        data = dict(data)
        data["jobs"] = [ArrayJob(**j) for j in data.get("jobs", [])]
        return cls(**data)

    def job_of(self, index: int) -> ArrayJob | None:
        """The latest submission that ran task ``index`` (a rerun supersedes the first)."""
        for job in reversed(self.jobs):
            if index in job.indices:
                return job
        return None

    def task_dir(self, index: int) -> str:
        return f"{self.run_dir}/tasks/{index}"


def runs_dir() -> Path:
    """The 0700 folder of the run records."""
    path = state_home() / "batch"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def save_run(run: BatchRun) -> None:
    """Write the record atomically, 0600."""
    atomic_write(runs_dir() / f"{run.id}.json", json.dumps(run.to_dict(), indent=1) + "\n",
                 mode=0o600)


def load_runs() -> list[BatchRun]:
    """Every recorded run, newest first (unreadable records are left out)."""
    out = []
    for path in runs_dir().glob("*.json"):
        try:
            out.append(BatchRun.from_dict(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return sorted(out, key=lambda r: -r.created)


def find_run(ident: str) -> BatchRun:
    """A run by id, unique id prefix, or one of its job ids."""
    runs = load_runs()
    exact = [r for r in runs if ident == r.id or ident in (j.job_id for j in r.jobs)]
    matches = exact or [r for r in runs if r.id.startswith(ident)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(f"no batch run {ident!r}; see `hpc-dl4mic batch list`")
    raise InputError(f"batch run {ident!r} is ambiguous: {', '.join(r.id for r in matches)}")


def new_run_id(config_name: str) -> str:
    """``<config>-<date>-<time>-<4 hex>`` (the config's name as :func:`safe_name` makes it)."""
    from ..fsutil import safe_name

    return f"{safe_name(config_name)}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def manifest_text(tasks: list[dict[str, Any]]) -> str:
    """``params.jsonl``: one JSON line per task."""
    return "".join(json.dumps({"index": t["index"], "params": t["params"]}, sort_keys=True)
                   + "\n" for t in tasks)
