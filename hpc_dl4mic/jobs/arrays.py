"""States of job-array elements: ONE ``squeue`` and ONE ``sacct`` call for any number of
arrays (``sacct`` answers nothing when accounting is off; ``squeue -t all`` still knows
finished elements for ``MinJobAge`` seconds).

Elements are keyed ``JOBID_INDEX``; a pending range (``123_[4-9%2]``) is expanded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import RemoteError
from .scheduler import JobInfo

SQUEUE_FORMAT = "%i|%T|%N|%r|%S|%e|%M"
SACCT_FIELDS = "JobID,State,ExitCode,NodeList,Start,End,Elapsed"
DEFAULT_MAX_ARRAY_SIZE = 1001
_MAX_ARRAY = re.compile(r"^\s*MaxArraySize\s*=\s*(\d+)\s*$", re.M)
_RANGE = re.compile(r"^(\d+)_\[([0-9,\-]+)(?:%\d+)?\]$")
_ELEMENT = re.compile(r"^(\d+)_(\d+)$")
NOT_ACCOUNTED = ("accounting storage is disabled", "slurmdbd", "not running a supported")


def expand_ids(job_id: str) -> list[str]:
    """``123_4`` -> [``123_4``]; ``123_[1-3,7%2]`` -> 123_1, 123_2, 123_3, 123_7; a plain
    job id or anything else -> [it]."""
    match = _RANGE.match(job_id)
    if not match:
        return [job_id]
    out = []
    for part in match.group(2).split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return [job_id]
        out += [f"{match.group(1)}_{i}" for i in range(int(first), int(last or first) + 1)]
    return out


def parse_max_array_size(text: str) -> int:
    """MaxArraySize from ``scontrol show config`` output (default 1001 when absent)."""
    match = _MAX_ARRAY.search(text or "")
    return int(match.group(1)) if match and int(match.group(1)) > 0 else DEFAULT_MAX_ARRAY_SIZE


def parse_squeue(text: str) -> dict[str, JobInfo]:
    """``squeue -h -r -t all -o SQUEUE_FORMAT`` lines, by element id."""
    out: dict[str, JobInfo] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 7:
            continue
        job, state, node, reason, start, end, used = parts[:7]
        for element in expand_ids(job):
            out[element] = JobInfo(job_id=element, state=state, node=node, reason=reason,
                                   start_time=start, end_time=end, elapsed=used)
    return out


def parse_sacct(text: str) -> dict[str, JobInfo]:
    """``sacct -n -P -X -o SACCT_FIELDS`` lines, by element id (``CANCELLED by 0`` ->
    CANCELLED)."""
    out: dict[str, JobInfo] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 7:
            continue
        job, state, code, node, start, end, elapsed = parts[:7]
        state = (state.split() or ["UNKNOWN"])[0].rstrip("+")
        for element in expand_ids(job):
            out[element] = JobInfo(job_id=element, state=state, node=node, exit_code=code,
                                   start_time=start, end_time=end, elapsed=elapsed)
    return out


def array_states(runner, job_ids: Sequence[str]) -> tuple[dict[str, JobInfo], bool]:
    """(element states, whether accounting answered): sacct's record, overridden by
    squeue's for elements SLURM still holds (fresher while they run)."""
    if not job_ids:
        return {}, False
    ids = ",".join(job_ids)
    acct = runner.run(["sacct", "-n", "-P", "-X", "-j", ids, "-o", SACCT_FIELDS],
                      check=False, timeout=60)
    accounted = acct.returncode == 0 and not any(
        s in (acct.stderr or "").lower() for s in NOT_ACCOUNTED)
    states = parse_sacct(acct.stdout) if accounted else {}
    queue = runner.run(["squeue", "-h", "-r", "-t", "all", "-j", ids, "-o", SQUEUE_FORMAT],
                       check=False, timeout=60)
    if queue.returncode != 0 and "Invalid job id" not in (queue.stderr or ""):
        raise RemoteError(f"squeue -j {ids}: {(queue.stderr or '').strip()}")
    for element, info in parse_squeue(queue.stdout if queue.returncode == 0 else "").items():
        old = states.get(element)
        states[element] = info if old is None else JobInfo(
            job_id=element, state=info.state, node=info.node or old.node, reason=info.reason,
            start_time=info.start_time, end_time=info.end_time, exit_code=old.exit_code,
            elapsed=info.elapsed)
    return states, accounted
