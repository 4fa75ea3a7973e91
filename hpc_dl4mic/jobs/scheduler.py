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


class Scheduler(Protocol):
    """Submit a job script, ask about a job, cancel it."""

    def submit(self, script: str) -> str: ...  # path of a script already on the host
    def submit_text(self, script: str, directory: str,
                    make_dirs: Sequence[str] = ()) -> str: ...
    def info(self, job_id: str) -> JobInfo | None: ...  # None: the scheduler forgot it
    def cancel(self, job_id: str) -> None: ...
