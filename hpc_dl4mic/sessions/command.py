"""``hpc-dl4mic run``: a plain command inside TARGET's image as a job (``--nv``, data and
results bound, its own results folder as working directory), its log followed until it
ends. It is a session of kind ``run``: ``status``, ``logs``, ``cancel`` and ``fetch`` work
on it as on a Jupyter session."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import InputError
from ..fsutil import safe_name
from ..remote.hosts import open_host
from .options import SubmitOptions, check_local_options, parse_upload
from .records import ACTIVE_STATES, Say, Session, new_session_id, save_session

if TYPE_CHECKING:
    from ..remote.host import Host
    from ..remote.profiles import Profile

RUN_KIND = "run"


def render_command_script(session: Session, profile: Profile, *, image_name: str,
                          command: Sequence[str], sbatch_lines: Sequence[str]) -> str:
    """The job script of a command run (pure; every word of the command shell-quoted): the
    profile's ``command_template`` or the built-in."""
    from ..jobs.resources import signal_seconds
    from ..jobs.site_templates import job_template, render_job

    time_limit = next((ln.split("=", 1)[1] for ln in sbatch_lines
                       if ln.startswith("--time=")), None)
    return render_job(job_template(profile, "command_template"), dict(
        job_name=safe_name(f"hpc-dl4mic-run-{session.config}"),
        session_dir=session.session_dir, sbatch_lines=list(sbatch_lines),
        session_id=session.id, image_name=image_name, tool_version=__version__,
        image=session.image, data_dir=session.data_dir, results_dir=session.results_dir,
        command=list(command), modules=profile.modules, apptainer=profile.apptainer,
        signal_seconds=signal_seconds(time_limit),
        offline=not getattr(profile, "node_internet", False)))


def exit_code(host: Host, session: Session) -> int | None:
    """The command's exit code, once the job wrote it."""
    try:
        text = host.read_file(f"{session.session_dir}/exit_code").decode().strip()
    except Exception:  # noqa: BLE001 - not written (yet), whatever the host says
        return None
    return int(text) if text.lstrip("-").isdigit() else None


def follow(host: Host, session: Session, *, write: Say, say: Say,
           interval: float = 1.0) -> int | None:
    """Print the job log until the job ends; the command's exit code (None: unknown)."""
    from .results import print_log

    print_log(host, session, follow=True, write=write, interval=interval)
    for _ in range(10):  # the exit code file lands with the job's last lines
        code = exit_code(host, session)
        if code is not None or session.state not in ACTIVE_STATES:
            break
        time.sleep(interval)
    code = exit_code(host, session)
    say(f"job {session.job_id} ended ({session.state})"
        + (f"; the command exited with code {code}" if code is not None else ""))
    return code


def submit_command(host: Host, profile: Profile, *, config_name: str, image_path: str,
                   image_name: str, folders, command: Sequence[str],
                   sbatch_lines: Sequence[str], profile_file: Path | None = None,
                   kind: str = RUN_KIND) -> Session:
    """Submit ``command`` in the image as a job and record it (a session of ``kind``)."""
    session_id = new_session_id(config_name)
    session = Session(id=session_id, profile=profile.name, job_id="", config=config_name,
                      image=image_path, session_dir=f"{folders.work}/sessions/{session_id}",
                      results_dir=folders.results, data_dir=folders.data, created=time.time(),
                      profile_file=str(profile_file) if profile_file else None,
                      extra={"kind": kind, "command": list(command) if kind == RUN_KIND
                             else list(command)[:1]})
    script = render_command_script(session, profile, image_name=image_name, command=command,
                                   sbatch_lines=sbatch_lines)
    session.job_id = host.scheduler().submit_text(script, session.session_dir,
                                                  make_dirs=(folders.data, folders.results))
    save_session(session)
    return session


def start_command(target: str, command: Sequence[str], *, profile_name: str | None,
                  run_local: bool, profile_file: Path | None, build: dict, options: dict,
                  detach: bool, accept_new_host_key: bool, say: Say, build_progress: Say,
                  write: Callable[[str], None]) -> tuple[Session, int | None]:
    """``hpc-dl4mic run``: check here, make sure of the image, submit; unless ``detach``,
    follow the log to the end. (session, exit code of the command or None)."""
    from ..catalogue.config import resolve_target
    from ..jobs.site_templates import check_job_templates
    from ..jobs.slurm import sbatch_lines
    from .prepare import job_image, job_profile, prepare_folders, upload_folder

    if not command:
        raise InputError("no command: give it after `--`, e.g. "
                         "`hpc-dl4mic run TARGET -- python train.py --epochs 3`")
    opts = SubmitOptions(**options)
    config = resolve_target(target)
    if run_local:
        check_local_options(opts, profile_name=profile_name)
    profile = job_profile(profile_name, run_local, profile_file)
    if opts.upload:
        parse_upload(opts.upload)
    lines = sbatch_lines(profile, opts.resources)
    check_job_templates(profile, "command_template")  # before anything remote
    with open_host(profile, accept_new_host_key=accept_new_host_key) as host:
        folders = prepare_folders(host, profile, opts)
        inputs, image = job_image(host, profile, config, build, say=say,
                                  progress=build_progress)
        upload_folder(host, folders, say=say, seen_in="the container")
        session = submit_command(host, profile, config_name=config.name,
                                 image_path=str(image.path), image_name=inputs.name,
                                 folders=folders, command=command, sbatch_lines=lines,
                                 profile_file=profile_file)
        say(f"submitted job {session.job_id} (run {session.id}); results in "
            f"{session.work_results}")
        if detach:
            return session, None
        code = follow(host, session, write=write, say=say)
        save_session(session)
        return session, code
