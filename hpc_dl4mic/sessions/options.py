"""``submit``'s options and the checks that need nothing remote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..jobs.resources import JobResources


@dataclass
class SubmitOptions:
    data: str | None = None
    results: str | None = None
    upload: str | None = None  # SRC or SRC:DEST (DEST inside the data folder)
    resources: JobResources = JobResources()  # overrides of the profile's
    ready_timeout: float = 600.0
    local_port: int = 0
    forward: tuple[int, ...] = ()  # more ports of the job to forward (--forward)


def check_local_options(options: SubmitOptions, *, profile_name: str | None) -> None:
    """``--local`` runs here, without SLURM or a tunnel: refuse what would be ignored."""
    given = [f"--{name}" for name in options.resources.given()]
    if profile_name:
        given.insert(0, "--profile")
    if options.local_port:
        given.append("--port")
    if given:
        raise InputError(f"{', '.join(given)}: not used with --local (no cluster, no SLURM, "
                         "no tunnel: the job runs here until it ends or is cancelled)")


def check_ports(ports: tuple[int, ...] | list[int]) -> None:
    """``--forward`` ports: each between 1 and 65535."""
    for port in ports:
        if not 1 <= int(port) <= 65535:
            raise InputError(f"--forward {port}: expected a port between 1 and 65535")


def check_attach_options(options: SubmitOptions) -> None:
    """What can be checked here before anything is submitted: the local tunnel port."""
    from ..remote.tunnel import check_port_free

    if not 0 <= options.local_port <= 65535:
        raise InputError(f"--port {options.local_port}: expected a port between 1 and 65535 "
                         "(or 0 for a free one)")
    if options.local_port:
        check_port_free(options.local_port)


def parse_upload(value: str) -> tuple[Path, str]:
    """``--upload SRC[:DEST]``: the local folder and its place inside the data folder
    (default: the folder's own name)."""
    src, dest = value, ""
    if not Path(value).expanduser().is_dir() and ":" in value:
        src, dest = value.rsplit(":", 1)
    local = Path(src).expanduser()
    if not local.is_dir():
        raise InputError(f"--upload {value}: {src!r} is not a local folder")
    dest = (dest or local.resolve().name).strip("/")
    parts = dest.split("/")
    if not dest or any(p in ("", ".", "..") for p in parts) or any(c in dest for c in ",:\n"):
        raise InputError(f"--upload {value}: DEST {dest!r} must be a relative folder inside the "
                         "data folder (no '..', ',' or ':')")
    return local, dest
