"""SLURM: job scripts from templates (pure functions), and sbatch/squeue/scontrol/scancel
through a runner (local or SSH)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import InputError, RemoteError
from ..remote.runner import Runner
from .resources import (  # noqa: F401 - TIME_FORMS, parse_time re-exported
    RESOURCE_SPECS,
    TIME_FORMS,
    JobResources,
    check_resource,
    parse_time,
)
from .scheduler import JobInfo

if TYPE_CHECKING:  # pragma: no cover
    from ..remote.profiles import Profile

SBATCH_VALUE = re.compile(r"^[A-Za-z0-9_.:,=+/@%-]+$")


def _check_value(where: str, value: str) -> str:
    if not SBATCH_VALUE.match(value):
        raise InputError(f"{where} {value!r}: only letters, digits and _.:,=+/@%- are allowed")
    return value


def sbatch_lines(profile: Profile, overrides: JobResources | None = None) -> list[str]:
    """``#SBATCH`` option lines (without the prefix): each resource from ``overrides`` where
    given, else from the profile; then the profile's ``sbatch_extra``."""
    given = overrides.given() if overrides is not None else {}
    base = profile.resources.given()
    lines = []
    for name, spec in RESOURCE_SPECS.items():
        where = f"--{name}" if name in given else f"profile {profile.name}: {name}"
        value = check_resource(name, given.get(name, base.get(name)), where)
        if value is not None:
            lines.append(f"--{spec.sbatch}={_check_value(where, str(value))}")
    for extra in profile.sbatch_extra:
        if not _one_sbatch_word(extra):
            raise InputError(f"profile {profile.name}: sbatch_extra {extra!r}: "
                             "expected one '--option=value' per entry (quote a value with "
                             "spaces; no backslashes or line breaks)")
        lines.append(extra)
    return lines


def _one_sbatch_word(extra: str) -> bool:
    """Whether ``extra`` is one option word as sbatch reads an #SBATCH line: shell-like
    quotes, balanced, of one kind; no backslash (sbatch reads it even in single quotes)."""
    if (re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\\\]", extra) or not extra.startswith("--")
            or ("'" in extra and "\"" in extra)):
        return False
    try:
        return len(shlex.split(extra)) == 1
    except ValueError:
        return False


def render_template(name: str, **context: object) -> str:
    """Render ``slurm_templates/NAME`` (:mod:`hpc_dl4mic.templates`)."""
    from ..templates import render

    return render(f"slurm_templates/{name}", context)


def with_modules(argv: Sequence[str], modules: Sequence[str]) -> list[str]:
    """``argv`` run after ``module load MODULES`` (a login shell provides ``module``)."""
    if not modules:
        return list(argv)
    loads = " && ".join(f"module load {shlex.quote(m)}" for m in modules)
    return ["bash", "-lc", f'{loads} && exec "$@"', "hpc-dl4mic", *argv]


def sbatch(runner: Runner, script_path: str, *, wait: bool = False,
           timeout: float | None = None) -> str:
    """``sbatch --parsable SCRIPT``: the job id. With ``wait``, blocks until the job ends and
    raises a RemoteError when it failed."""
    argv = ["sbatch", "--parsable", *(["--wait"] if wait else []), script_path]
    return _job_id(runner.run(argv, check=False, timeout=timeout), wait)


def sbatch_text(runner: Runner, script: str, directory: str, *,
                make_dirs: Sequence[str] = ()) -> str:
    """Create ``directory`` (and ``make_dirs``) 0700, write ``directory/job.sbatch`` and
    submit it: one remote command, so one round trip on a distant login node."""
    program = ('umask 077 && mkdir -p -- "$@" && cat > "$1/job.sbatch" && '
               'exec sbatch --parsable "$1/job.sbatch"')
    result = runner.run(["sh", "-c", program, "hpc-dl4mic", directory, *make_dirs],
                        check=False, input=script, timeout=120)
    return _job_id(result, wait=False)


def _job_id(result, wait: bool) -> str:
    job_id = result.stdout.strip().split(";")[0].splitlines()[0] if result.stdout.strip() else ""
    if result.returncode != 0:
        if job_id and wait:
            raise RemoteError(f"SLURM job {job_id} failed (exit {result.returncode})")
        raise RemoteError(f"sbatch failed: {result.stderr.strip() or result.stdout.strip()}")
    if not job_id.isdigit():
        raise RemoteError(f"sbatch printed no job id: {result.stdout.strip()!r}")
    return job_id


SCONTROL_KEY = re.compile(r"(?:^|\s)([A-Z][A-Za-z0-9:/_]*)=")


def parse_scontrol(text: str) -> dict[str, str]:
    """``scontrol show job -o`` output (one line of ``Key=Value`` words) as a dict.

    Values may contain spaces (paths, job names), so a value runs up to the next `` Key=``.
    """
    line = text.strip().splitlines()[0] if text.strip() else ""
    matches = list(SCONTROL_KEY.finditer(line))
    fields: dict[str, str] = {}
    for match, nxt in zip(matches, [*matches[1:], None]):
        end = nxt.start() if nxt else len(line)
        fields[match.group(1)] = line[match.end():end].strip()
    return fields


def job_info(runner: Runner, job_id: str) -> JobInfo | None:
    """The job's state from ``scontrol show job -o`` (None when SLURM forgot it)."""
    result = runner.run(["scontrol", "show", "job", "-o", job_id], check=False, timeout=30)
    if result.returncode != 0:
        if "Invalid job id" in result.stderr:
            return None
        raise RemoteError(f"scontrol show job {job_id}: {result.stderr.strip()}")
    f = parse_scontrol(result.stdout)
    return JobInfo(job_id=job_id, state=f.get("JobState", "UNKNOWN"),
                   reason=f.get("Reason", ""), node=f.get("BatchHost", "") or f.get("NodeList", ""),
                   start_time=f.get("StartTime", ""), end_time=f.get("EndTime", ""),
                   exit_code=f.get("ExitCode", ""), time_limit=f.get("TimeLimit", ""),
                   std_out=f.get("StdOut", ""))


def cancel(runner: Runner, job_id: str) -> None:
    runner.run(["scancel", job_id], timeout=30)


class SlurmScheduler:
    """sbatch/scontrol/scancel through a runner (the interface sessions use)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def submit(self, script: str) -> str:
        return sbatch(self.runner, script)

    def submit_text(self, script: str, directory: str, make_dirs: Sequence[str] = ()) -> str:
        return sbatch_text(self.runner, script, directory, make_dirs=make_dirs)

    def info(self, job_id: str) -> JobInfo | None:
        return job_info(self.runner, job_id)

    def cancel(self, job_id: str) -> None:
        cancel(self.runner, job_id)

    def max_array_size(self) -> int:
        from .arrays import parse_max_array_size

        result = self.runner.run(["scontrol", "show", "config"], check=False, timeout=30)
        return parse_max_array_size(result.stdout if result.returncode == 0 else "")

    def array_states(self, job_ids: Sequence[str]) -> tuple[dict[str, JobInfo], bool]:
        from .arrays import array_states

        return array_states(self.runner, job_ids)
