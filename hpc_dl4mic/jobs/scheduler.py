"""What every scheduler (SLURM over a host, or plain processes on this machine) offers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    state: str
    reason: str = ""
    node: str = ""
    start_time: str = ""
    end_time: str = ""
    exit_code: str = ""
    time_limit: str = ""
    std_out: str = ""
    elapsed: str = ""  # [D-]HH:MM:SS as SLURM prints it


class Scheduler(Protocol):
    """Submit a job script, ask about a job (or the elements of job arrays), cancel it."""

    def submit(self, script: str) -> str: ...  # path of a script already on the host
    def submit_text(self, script: str, directory: str,
                    make_dirs: Sequence[str] = ()) -> str: ...
    def info(self, job_id: str) -> JobInfo | None: ...  # None: the scheduler forgot it
    def cancel(self, job_id: str) -> None: ...
    # job arrays: the largest array it takes (tasks beyond it go into further arrays),
    # and the states of array elements keyed JOBID_INDEX, with whether an accounting
    # database answered; a scheduler without arrays runs a job's tasks one after another
    # and knows no elements
    def max_array_size(self) -> int: ...
    def array_states(self, job_ids: Sequence[str]) -> tuple[dict[str, JobInfo], bool]: ...
