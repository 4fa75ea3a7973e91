"""Starting a batch run: every task checked here, then one connection that makes sure of
the image, writes the run folder and submits the job array(s); ``rerun`` resubmits some
tasks of a run."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import InputError
from ..fsutil import safe_name
from ..jobs.resources import JobResources, signal_seconds, walltime_seconds
from .arrays import split
from .runs import (
    IN_IMAGE_RUN_DIR,
    NOTEBOOK_FILE,
    PARAMS_FILE,
    RUNNER_FILE,
    ArrayJob,
    BatchRun,
    manifest_text,
    new_run_id,
    save_run,
)

if TYPE_CHECKING:
    from ..remote.host import Host
    from ..remote.profiles import Profile

Say = Callable[[str], None]


@dataclass(frozen=True)
class BatchOptions:
    """``batch``'s options besides the target, the profile and the image's."""

    params: tuple[tuple[str, str], ...] = ()  # -p NAME VALUE, for every task
    values_file: Path | None = None  # -f params.yaml, for every task
    sweep_file: Path | None = None  # --sweep sweep.yaml: grid and/or rows
    skip_sections: str = ""  # removed from the batch notebook for this run
    resources: JobResources = JobResources()
    max_parallel: int | None = None
    task_timeout: str | None = None
    retries: int = 0
    data: str | None = None
    results: str | None = None
    upload: str | None = None
    check_gpu: bool = False  # run `check-gpu` first; stop when it fails


def check_options(options: BatchOptions, *, run_local: bool) -> int:
    """What needs nothing but the options; the task timeout in seconds (0: none)."""
    if options.max_parallel is not None and options.max_parallel < 1:
        raise InputError(f"--max-parallel {options.max_parallel}: expected 1 or more")
    if options.retries < 0:
        raise InputError(f"--retries {options.retries}: expected 0 or more")
    if run_local:
        given = [f"--{n}" for n in options.resources.given()]
        given += ["--max-parallel"] if options.max_parallel not in (None, 1) else []
        given += ["--retries"] if options.retries else []
        if given:
            raise InputError(f"{', '.join(given)}: not used with --local (no SLURM: the "
                             "tasks run here one after another)")
    return walltime_seconds(options.task_timeout, "--task-timeout") \
        if options.task_timeout else 0


def _in_skipped(section: str, skipped: Sequence[str]) -> bool:
    return any(section == t or section.startswith(t) for t in skipped)


def plan(config, notebook: Path, options: BatchOptions) -> tuple[list[dict[str, Any]],
                                                                 list[str], str | None]:
    """(tasks, varying parameter names, batch notebook text or None): every combination
    checked against the notebook's fields; with ``--skip-sections`` the batch notebook is
    converted here without them (their fields are then unknown)."""
    from ..images.inputs import CONVERSION_STAMP
    from ..notebooks.convert import convert, read_notebook
    from ..notebooks.params import extract_params
    from ..notebooks.sections import normalize_sections
    from ..notebooks.write import notebook_text
    from .sweep import common_values, expand, load_sweep, load_values_file, varying

    nb = read_notebook(notebook)
    specs = extract_params(nb)
    skipped = normalize_sections(options.skip_sections)
    text = None
    if skipped:
        specs = [s for s in specs if not _in_skipped(s.section, skipped)]
        converted = convert(nb, mode="batch",
                            sections_to_remove=[*config.sections_to_remove, *skipped],
                            source_name=config.notebook_filename, config_name=config.name,
                            tool_version=CONVERSION_STAMP)
        text = notebook_text(converted, f"{notebook} (batch, --skip-sections)")
    file_values = load_values_file(options.values_file) if options.values_file else {}
    common = common_values(options.params, file_values,
                           str(options.values_file) if options.values_file else "-f")
    sweep = load_sweep(options.sweep_file) if options.sweep_file else None
    tasks = expand(specs, sweep, common)
    return [t.to_dict() for t in tasks], varying(tasks), text


def internet_notes(config, notebook: Path, skip_sections: str = "") -> list[str]:
    """What the run's offline nodes will do with the notebook's downloading sections."""
    from ..notebooks.convert import internet_summary, read_notebook
    from ..notebooks.internet import report_lines
    from ..notebooks.sections import normalize_sections

    removed = [*config.sections_to_remove, *normalize_sections(skip_sections)]
    return report_lines(internet_summary(read_notebook(notebook), removed))


def runner_code() -> str:
    """The in-image task runner's source (sent with every run)."""
    from importlib.resources import files

    return files("hpc_dl4mic.batch").joinpath("task_runner.py").read_text(encoding="utf-8")


def render_array_script(run: BatchRun, profile: Profile, *, image_name: str,
                        sbatch_lines: Sequence[str], offset: int, indices: Sequence[int],
                        array: str, time_limit: str | None) -> str:
    """A job array's script: the profile's ``batch_template`` or the built-in."""
    from ..jobs.site_templates import job_template, render_job

    return render_job(job_template(profile, "batch_template"), dict(
        job_name=safe_name(f"hpc-dl4mic-batch-{run.config}"),
        run_dir=run.run_dir, run_id=run.id, image=run.image, image_name=image_name,
        data_dir=run.data_dir, notebook=run.notebook, offset=offset, array=array,
        indices=" ".join(str(i) for i in indices), task_timeout=run.task_timeout,
        retries=run.retries, signal_seconds=signal_seconds(time_limit),
        sbatch_lines=list(sbatch_lines), modules=profile.modules, apptainer=profile.apptainer,
        tool_version=__version__,
        offline=not getattr(profile, "node_internet", False)))


def submit_tasks(host: Host, run: BatchRun, profile: Profile, indices: Sequence[int], *,
                 say: Say) -> list[ArrayJob]:
    """Submit ``indices`` of ``run`` as job arrays (one per block of MaxArraySize), with the
    profile's resources and the run's overrides; the submissions are added to ``run.jobs``
    as they are made."""
    from ..jobs.slurm import sbatch_lines

    lines = sbatch_lines(profile, JobResources(**run.resources))
    time_limit = next((ln.split("=", 1)[1] for ln in lines if ln.startswith("--time=")), None)
    jobs = host.scheduler()
    chunks = split(indices, jobs.max_array_size())
    made = []
    for chunk in chunks:
        folder = f"{run.run_dir}/jobs/{len(run.jobs)}"
        script = render_array_script(run, profile, image_name=run.config, sbatch_lines=lines,
                                     offset=chunk.offset, indices=chunk.indices,
                                     array=chunk.spec(run.max_parallel), time_limit=time_limit)
        job_id = jobs.submit_text(script, folder, make_dirs=(f"{run.run_dir}/logs",
                                                             f"{run.run_dir}/tasks"))
        job = ArrayJob(job_id, chunk.offset, list(chunk.indices))
        run.jobs.append(job)
        made.append(job)
        say(f"submitted job {job_id}: {len(chunk.indices)} task(s)")
    return made


def write_run_folder(host: Host, run: BatchRun, notebook_text: str | None) -> None:
    """The run folder (0700) with the manifest, the runner and the run's own notebook."""
    host.makedirs(run.run_dir, mode=0o700)
    host.write_file(f"{run.run_dir}/{PARAMS_FILE}", manifest_text(run.tasks), mode=0o600)
    host.write_file(f"{run.run_dir}/{RUNNER_FILE}", runner_code(), mode=0o600)
    if notebook_text is not None:
        host.write_file(f"{run.run_dir}/{NOTEBOOK_FILE}", notebook_text, mode=0o600)


def start_batch(target: str, *, profile_name: str | None, run_local: bool,
                profile_file: Path | None, build: dict, options: BatchOptions,
                accept_new_host_key: bool = False, say: Say,
                build_progress: Say | None = None) -> BatchRun:
    """``hpc-dl4mic batch TARGET``: check every task here, then make sure of the image,
    upload the data, write the run folder and submit; the run's record."""
    from ..catalogue.config import resolve_target
    from ..catalogue.sources import notebook_path
    from ..images.render import NOTEBOOKS_DIR, notebook_names
    from ..jobs.site_templates import check_job_templates
    from ..jobs.slurm import sbatch_lines
    from ..remote.hosts import open_host
    from ..sessions.options import SubmitOptions, parse_upload
    from ..sessions.prepare import job_image, job_profile, prepare_folders, upload_folder

    task_timeout = check_options(options, run_local=run_local)
    config = resolve_target(target)
    if run_local and profile_name:
        raise InputError("--profile: not used with --local (the tasks run here)")
    profile = job_profile(profile_name, run_local, profile_file)
    if options.upload:
        parse_upload(options.upload)
    sbatch_lines(profile, options.resources)  # resource values are checked before anything remote
    check_job_templates(profile, "batch_template")  # and the site's job-script templates
    if options.check_gpu:
        check_job_templates(profile, "command_template")
    source = notebook_path(config, build.get("notebook"))
    tasks, varying, notebook_text = plan(config, source, options)
    if not getattr(profile, "node_internet", False):
        for line in internet_notes(config, source, options.skip_sections):
            say(line)
    with open_host(profile, accept_new_host_key=accept_new_host_key) as host:
        folders = prepare_folders(host, profile, SubmitOptions(
            data=options.data, results=options.results, upload=options.upload))
        say(f"{len(tasks)} task(s)" + (f", varying {', '.join(varying)}" if varying else ""))
        _, image = job_image(host, profile, config, build, say=say, progress=build_progress)
        if options.check_gpu:
            from ..gpu.check import require_gpu

            require_gpu(host, profile, config_name=config.name, image_path=str(image.path),
                        folders=folders, resources=options.resources, say=say)
        upload_folder(host, folders, say=say, seen_in="the notebook")
        run_id = new_run_id(config.name)
        notebook = (f"{IN_IMAGE_RUN_DIR}/{NOTEBOOK_FILE}" if notebook_text is not None
                    else f"{NOTEBOOKS_DIR}/{notebook_names(config)[1]}")
        run = BatchRun(id=run_id, profile=profile.name, config=config.name,
                       image=str(image.path), run_dir=f"{folders.results}/batch/{run_id}",
                       data_dir=folders.data, notebook=notebook, tasks=tasks,
                       varying=varying, created=time.time(),
                       profile_file=str(profile_file) if profile_file else None,
                       max_parallel=options.max_parallel, task_timeout=task_timeout,
                       retries=options.retries, resources=options.resources.given())
        write_run_folder(host, run, notebook_text)
        try:
            submit_tasks(host, run, profile, [t["index"] for t in tasks], say=say)
        finally:
            if run.jobs:
                save_run(run)
    say(f"batch run {run.id}: {len(tasks)} task(s) in {run.run_dir}")
    return run


def rerun(run: BatchRun, host: Host, profile: Profile, indices: Sequence[int], *,
          say: Say) -> list[ArrayJob]:
    """Resubmit ``indices`` of ``run`` (their old status files are cleared first)."""
    if not indices:
        return []
    program = 'cd "$1" && shift && for i in "$@"; do rm -f "tasks/$i/status.json"; done'
    host.run(["sh", "-c", program, "hpc-dl4mic", run.run_dir, *map(str, indices)], timeout=60)
    run.state = "SUBMITTED"
    try:
        return submit_tasks(host, run, profile, indices, say=say)
    finally:
        save_run(run)
