"""Starting a session: its folders on the host, its image, the upload, the job script and
the job, then (``submit``) waiting for Jupyter and tunnelling it.

A session is recorded here as soon as its job is submitted, so ``status``, ``connect``,
``logs``, ``cancel`` and ``fetch`` work after the submitting command has gone. On the host
it has a 0700 folder ``WORK_DIR/sessions/<id>/`` holding the job script, the job log and,
once Jupyter answers, ``connection.json`` (host, port, token; 0600).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import InputError
from ..fsutil import safe_name
from ..remote.hosts import open_host
from ..remote.profiles import Profile, get_profile
from .attach import run_attached
from .options import (
    SubmitOptions,
    check_attach_options,
    check_local_options,
    check_ports,
    parse_upload,
)
from .prepare import Folders, prepare_folders, session_image, upload_data
from .records import Say, Session, new_session_id, save_session

if TYPE_CHECKING:
    from ..remote.host import Host

def runs_here(profile: Profile) -> bool:
    """Whether the profile is ``--local``'s: the job runs on this machine."""
    from ..remote.localhost import LOCAL_PROFILE

    return profile.name == LOCAL_PROFILE


def render_job_script(session: Session, profile: Profile, *, image_name: str,
                      sbatch_lines: list[str], ready_timeout: int = 300,
                      bind_host: str = "") -> str:
    """The sbatch script of a session (pure): the profile's ``job_template`` or the
    built-in."""
    from ..jobs.site_templates import job_template, render_job

    return render_job(job_template(profile, "job_template"), dict(
        job_name=safe_name(f"hpc-dl4mic-{session.config}"),
        session_dir=session.session_dir, sbatch_lines=sbatch_lines, session_id=session.id,
        image_name=image_name, tool_version=__version__, image=session.image,
        data_dir=session.data_dir, results_dir=session.results_dir, notebook=session.notebook,
        ready_timeout=ready_timeout, modules=profile.modules, apptainer=profile.apptainer,
        bind_host=bind_host,
        offline=not getattr(profile, "node_internet", False)))


def start_session(inputs, profile: Profile, host: Host, options: SubmitOptions, *, say: Say,
                  profile_file: str | None = None, notebook: str = "",
                  build_progress: Say | None = None,
                  folders: Folders | None = None, extra_ports: tuple[int, ...] = ()) -> Session:
    """Make sure of the image, upload the data, submit the job, record the session."""
    from ..jobs.slurm import sbatch_lines

    lines = sbatch_lines(profile, options.resources)
    folders = folders or prepare_folders(host, profile, options)
    work, data_dir, results_dir = folders.work, folders.data, folders.results
    image = session_image(inputs, host, profile, progress=build_progress or say)
    say(f"image {'found in the cache' if image.cached else 'built'}: {image.path}")
    if folders.upload is not None:
        local_dir, dest = folders.upload
        upload_data(host, local_dir, f"{data_dir}/{dest}", say=say)
        say(f"your data is at /data/{dest} in the notebook")
    session_id = new_session_id(inputs.name)
    session = Session(id=session_id, profile=profile.name, job_id="", config=inputs.name,
                      image=str(image.path), session_dir=f"{work}/sessions/{session_id}",
                      results_dir=results_dir, data_dir=data_dir, created=time.time(),
                      profile_file=profile_file, notebook=notebook)
    if extra_ports:
        session.extra["extra_ports"] = sorted(set(extra_ports))
    script = render_job_script(session, profile, image_name=inputs.name, sbatch_lines=lines,
                               ready_timeout=int(min(options.ready_timeout, 3600)),
                               bind_host="127.0.0.1" if runs_here(profile) else "")
    session.job_id = host.scheduler().submit_text(script, session.session_dir,
                                                  make_dirs=(data_dir, results_dir))
    save_session(session)
    say(f"submitted job {session.job_id} (session {session.id})")
    return session


def submit_and_attach(target: str, *, profile_name: str | None, run_local: bool,
                      profile_file: Path | None, build: dict, options: dict,
                      accept_new_host_key: bool, say: Say, build_progress: Say,
                      on_ready: Callable[[str], None], cancel_on_exit: bool,
                      ask_cancel: Callable[[str], bool] | None, tunnel: str,
                      check_gpu: bool = False) -> str:
    """``hpc-dl4mic submit``: check everything that can be checked here, make sure of the
    image, submit, then wait and tunnel (:func:`run_attached`). Returns the reason it ended.
    """
    from ..catalogue.config import resolve_target
    from ..images.build import prepare_notebook_image, remote_base_digest
    from ..jobs.site_templates import check_job_templates
    from ..jobs.slurm import sbatch_lines

    opts = SubmitOptions(**options)
    config = resolve_target(target)
    if run_local:
        from ..remote.hosts import local_profile

        check_local_options(opts, profile_name=profile_name)
        profile = local_profile()
    elif profile_name:
        profile = get_profile(profile_name, profile_file)
        check_attach_options(opts)
    else:
        raise InputError("name a cluster profile with --profile (or set HPC_DL4MIC_PROFILE), "
                         "or run on this machine with --local")
    if opts.upload:
        parse_upload(opts.upload)
    check_ports(opts.forward)
    sbatch_lines(profile, opts.resources)  # resource values are checked before anything remote
    check_job_templates(profile, "job_template")  # and the site's job-script templates
    with open_host(profile, accept_new_host_key=accept_new_host_key) as host:
        folders = prepare_folders(host, profile, opts)
        inputs = prepare_notebook_image(
            config, **build, **({} if run_local else {"digest": remote_base_digest(host)}))
        if check_gpu:
            from ..gpu.check import require_gpu

            image = session_image(inputs, host, profile, progress=build_progress)
            require_gpu(host, profile, config_name=config.name, image_path=str(image.path),
                        folders=folders, resources=opts.resources, say=say)
        names = [n.split("/", 1)[1] for n in inputs.files if n.startswith("notebooks/")]
        session = start_session(inputs, profile, host, opts, say=say,
                                profile_file=str(profile_file) if profile_file else None,
                                notebook=names[0] if names else "",
                                build_progress=build_progress, folders=folders,
                                extra_ports=(*config.hpc.extra_ports, *opts.forward))
        return run_attached(host, session, ready_timeout=opts.ready_timeout,
                            local_port=opts.local_port, say=say, on_ready=on_ready,
                            cancel_on_exit=cancel_on_exit, ask_cancel=ask_cancel,
                            tunnel=tunnel)
