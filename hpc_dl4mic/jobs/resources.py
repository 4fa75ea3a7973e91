"""The SLURM resources a job asks for, declared once (:class:`JobResources`).

Each field's metadata (:class:`Resource`) says its ``#SBATCH`` option, its CLI help and how
a value is checked; profiles (flat keys in profiles.yaml), the ``submit``/``profile add``
options and :func:`hpc_dl4mic.jobs.slurm.sbatch_lines` are all derived from it. Light on
purpose (no subprocess, no YAML): the CLI imports it to build its options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import InputError

TIME_FORMAT = (  # compiled on first use (the CLI imports this module for --help)
    r"^(?:(?P<days>\d+)-(?P<dh>\d{1,2})(?::(?P<dm>\d{2})(?::(?P<ds>\d{2}))?)?"
    r"|(?P<h>\d+):(?P<m>\d{2})(?::(?P<s>\d{2}))?"
    r"|(?P<minutes>\d+))$")
TIME_FORMS = "[D-]HH:MM:SS, HH:MM, MINUTES, D-HH or D-HH:MM"


def parse_time(value: object, where: str = "--time") -> str:
    """A walltime in one of :data:`TIME_FORMS`, as the unambiguous ``[D-]HH:MM:SS`` that SLURM
    reads (plain ``HH:MM`` would be minutes:seconds to SLURM). ``where`` names the option or
    profile key in the error."""
    import re

    text = str(value).strip()
    match = re.match(TIME_FORMAT, text)
    if not match or isinstance(value, bool):
        raise InputError(f"{where} {text!r}: not a walltime; expected {TIME_FORMS}")
    g = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if "minutes" in g:
        seconds = g["minutes"] * 60
    else:
        hours = g.get("h", g.get("dh", 0))
        minutes, secs = g.get("m", g.get("dm", 0)), g.get("s", g.get("ds", 0))
        wrong = ("minutes" if minutes >= 60 else "seconds" if secs >= 60
                 else "hours after D-" if "days" in g and hours >= 24 else "")
        if wrong:
            limit = 24 if wrong.startswith("hours") else 60
            raise InputError(f"{where} {text!r}: {wrong} must be below {limit}; "
                             f"expected {TIME_FORMS}")
        seconds = ((g.get("days", 0) * 24 + hours) * 60 + minutes) * 60 + secs
    if seconds == 0:
        raise InputError(f"{where} {text!r}: a walltime must be longer than zero")
    days, rest = divmod(seconds, 86400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{clock}" if days else clock


def walltime_seconds(value: object, where: str) -> int:
    """Seconds of a walltime in one of :data:`TIME_FORMS`."""
    text = parse_time(value, where)
    days, _, clock = text.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return ((int(days or 0) * 24 + h) * 60 + m) * 60 + s


def signal_seconds(time_limit: str | None, default: int = 120) -> int:
    """How long before the walltime SLURM warns a job (``--signal=B:USR1@N``): a tenth of
    the limit, between 10 s and 5 min (SLURM may send it up to a minute early)."""
    if not time_limit:
        return default
    return max(10, min(300, walltime_seconds(time_limit, "--time") // 10))


class Resource:
    """What one :class:`JobResources` field means: its sbatch option (without ``--``), its
    CLI help, its type (``str`` or ``int``, ints > 0) and an optional normaliser
    ``parse(value, where) -> str``. (A plain class: cheaper to import than a dataclass.)"""

    __slots__ = ("sbatch", "help", "kind", "parse")

    def __init__(self, sbatch: str, help: str, kind: type = str,
                 parse: Callable[[object, str], str] | None = None) -> None:
        self.sbatch, self.help, self.kind, self.parse = sbatch, help, kind, parse

    def __repr__(self) -> str:
        return f"Resource({self.sbatch!r}, kind={self.kind.__name__})"


def _resource(sbatch: str, help: str, kind: type = str,
              parse: Callable[[object, str], str] | None = None) -> Any:
    return field(default=None, metadata={"resource": Resource(sbatch, help, kind, parse)})


@dataclass(frozen=True)
class JobResources:
    """What a job asks SLURM for; None means "not given" (the profile's value, or none)."""

    partition: str | None = _resource("partition", "SLURM partition.")
    time: str | None = _resource("time", f"Walltime: {TIME_FORMS} (e.g. 04:00:00).",
                                 parse=parse_time)
    gres: str | None = _resource("gres", "Generic resources, e.g. gpu:1.")
    gpus: str | None = _resource("gpus", "GPUs (sbatch --gpus), e.g. 1 or a100:1.")
    cpus: int | None = _resource("cpus-per-task", "CPUs per task.", int)
    mem: str | None = _resource("mem", "Memory, e.g. 32G.")
    account: str | None = _resource("account", "SLURM account.")
    qos: str | None = _resource("qos", "SLURM QOS.")

    def given(self) -> dict[str, Any]:
        """The fields that have a value (an empty string counts as not given)."""
        return {name: value for name in RESOURCE_FIELDS
                if (value := getattr(self, name)) is not None and value != ""}

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, None included (the flat profile keys)."""
        return {name: getattr(self, name) for name in RESOURCE_FIELDS}


def resource_specs() -> Iterator[tuple[str, Resource]]:
    """``(field name, Resource)`` for each field, in declaration order."""
    for f in fields(JobResources):
        yield f.name, f.metadata["resource"]


RESOURCE_FIELDS: tuple[str, ...] = tuple(name for name, _ in resource_specs())
RESOURCE_SPECS: dict[str, Resource] = dict(resource_specs())
INT_RESOURCES: tuple[str, ...] = tuple(n for n, r in RESOURCE_SPECS.items() if r.kind is int)
STRING_RESOURCES: tuple[str, ...] = tuple(n for n in RESOURCE_FIELDS if n not in INT_RESOURCES)


def check_resource(name: str, value: object, where: str) -> Any:
    """``value`` of field ``name`` checked and normalised (None stays None); ``where`` names
    the option or profile key in the one-line error."""
    spec = RESOURCE_SPECS[name]
    if value is None:
        return None
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(f"{where}: expected a positive whole number, got {value!r}")
        return value
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InputError(f"{where}: expected a string, got {value!r}")
    return spec.parse(value, where) if spec.parse else str(value)
