"""``hpc-dl4mic check-gpu``: the probe (:mod:`.probe`) run in TARGET's image with ``--nv``
inside a short job with the profile's GPU request, and its verdicts (:mod:`.verdicts`).
``submit --check-gpu`` and ``batch --check-gpu`` run it first through the same connection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RemoteError
from .verdicts import FAIL, Check, parse_report, passed, verdicts

if TYPE_CHECKING:
    from ..jobs.resources import JobResources
    from ..remote.host import Host
    from ..remote.profiles import Profile

Say = Callable[[str], None]
CHECK_TIME = "00:05:00"  # the allocation's walltime unless --time is given
KIND = "gpu-check"


def probe_source() -> str:
    """The probe's text (run with ``python3 -c``: nothing to copy to the cluster)."""
    from importlib.resources import files

    return files("hpc_dl4mic.gpu").joinpath("probe.py").read_text(encoding="utf-8")


def check_resources(profile: Profile, resources: JobResources) -> JobResources:
    """The check's resources: the user's, a short walltime unless given (not for --local,
    which takes none)."""
    from ..remote.localhost import LOCAL_PROFILE

    if profile.name == LOCAL_PROFILE or resources.time is not None:
        return resources
    return replace(resources, time=CHECK_TIME)


def run_check(host: Host, profile: Profile, *, config_name: str, image_path: str,
              folders, resources: JobResources, say: Say) -> tuple[list[Check], dict | None]:
    """Submit the probe as a job in the image, wait for it, and judge its report."""
    from ..jobs.slurm import sbatch_lines
    from ..sessions.command import follow, submit_command

    lines = sbatch_lines(profile, check_resources(profile, resources))
    session = submit_command(host, profile, config_name=config_name, image_path=image_path,
                             image_name=config_name, folders=folders,
                             command=["python3", "-c", probe_source()], sbatch_lines=lines,
                             kind=KIND)
    say(f"GPU check: job {session.job_id} submitted")
    log: list[str] = []
    follow(host, session, write=log.append, say=say)
    report = parse_report("".join(log))
    if report is None:
        from ..remote.runner import tail

        return [Check("probe", FAIL, "the probe reported nothing; job log:\n"
                      + tail("".join(log), 15))], None
    return verdicts(report), report


def check_gpu(target: str, *, profile_name: str | None, run_local: bool,
              profile_file: Path | None, build: dict, resources: JobResources,
              accept_new_host_key: bool = False, say: Say,
              build_progress: Say | None = None) -> tuple[list[Check], dict | None]:
    """``hpc-dl4mic check-gpu TARGET``: (the checks, the probe's raw report)."""
    from ..catalogue.config import resolve_target
    from ..jobs.site_templates import check_job_templates
    from ..jobs.slurm import sbatch_lines
    from ..remote.hosts import open_host
    from ..sessions.options import SubmitOptions, check_local_options
    from ..sessions.prepare import job_image, job_profile, prepare_folders

    config = resolve_target(target)
    if run_local:
        check_local_options(SubmitOptions(resources=resources), profile_name=profile_name)
    profile = job_profile(profile_name, run_local, profile_file)
    sbatch_lines(profile, check_resources(profile, resources))  # checked before connecting
    check_job_templates(profile, "command_template")
    with open_host(profile, accept_new_host_key=accept_new_host_key) as host:
        folders = prepare_folders(host, profile, SubmitOptions())
        _, image = job_image(host, profile, config, build, say=say, progress=build_progress)
        return run_check(host, profile, config_name=config.name, image_path=str(image.path),
                         folders=folders, resources=resources, say=say)


def require_gpu(host: Host, profile: Profile, *, config_name: str, image_path: str, folders,
                resources: JobResources, say: Say) -> None:
    """``--check-gpu``: run the check; a failed one stops the command (nothing else runs)."""
    checks, _ = run_check(host, profile, config_name=config_name, image_path=image_path,
                          folders=folders, resources=resources, say=say)
    for check in checks:
        say(f"GPU check: {check.status:<4} {check.what}: {check.detail}")
    if not passed(checks):
        bad = next(c for c in checks if c.status == FAIL)
        raise RemoteError(f"GPU check failed ({bad.what}): {bad.detail.splitlines()[0]}; "
                          "nothing was submitted (run without --check-gpu to submit anyway)")
