"""Site overrides of the job-script templates.

A cluster profile may name its own template file for each job script hpc-dl4mic writes
(``job_template`` for ``submit``, ``batch_template`` for ``batch``, ``command_template``
for ``run``/``check-gpu``, ``build_template`` for a SLURM build job). A site file is
rendered by the same Jinja environment as the built-ins (:mod:`hpc_dl4mic.templates`), with
the same variables, and may ``{% extends "slurm_templates/NAME" %}`` the built-in and
override its blocks (``sbatch_options``, ``setup``, ``launch``).

Every problem of a site template (missing file, syntax error, a variable the script does
not get) is an :class:`~hpc_dl4mic.errors.InputError` naming ``FILE:LINE``; the static
part (:func:`check_template`) runs before anything is sent to the cluster.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from ..remote.profiles import Profile

# profile key: the built-in template (under slurm_templates/) it replaces
TEMPLATE_KEYS: dict[str, str] = {
    "job_template": "jupyter.sbatch.j2",
    "batch_template": "batch_array.sbatch.j2",
    "command_template": "command.sbatch.j2",
    "build_template": "build.sbatch.j2",
}

_SESSION = ("job_name", "session_dir", "sbatch_lines", "session_id", "image_name",
            "tool_version", "image", "data_dir", "results_dir", "modules", "apptainer",
            "offline")
# the variables each job script is rendered with (tests check them against the callers)
VARIABLES: dict[str, tuple[str, ...]] = {
    "job_template": (*_SESSION, "notebook", "ready_timeout", "bind_host"),
    "command_template": (*_SESSION, "command", "signal_seconds"),
    "batch_template": ("job_name", "run_dir", "run_id", "image", "image_name", "data_dir",
                       "notebook", "offset", "array", "indices", "task_timeout", "retries",
                       "signal_seconds", "sbatch_lines", "modules", "apptainer",
                       "tool_version", "offline"),
    "build_template": ("job_name", "log_path", "sbatch_lines", "image_name", "key",
                       "context_dir", "modules", "build_argv"),
}
BLOCKS = ("sbatch_options", "setup", "launch")


@dataclass(frozen=True)
class JobTemplate:
    """The template of one job script: a site file (``path``) or the built-in."""

    key: str                 # the profile key: job_template, batch_template, ...
    path: Path | None = None
    where: str = ""          # for messages: "profile NAME: KEY"

    @property
    def builtin(self) -> str:
        return f"slurm_templates/{TEMPLATE_KEYS[self.key]}"

    @property
    def variables(self) -> tuple[str, ...]:
        return VARIABLES[self.key]


def template_path(profile: Profile, key: str) -> Path | None:
    """The profile's file for ``key`` (``~`` expanded; a relative path from the profiles
    file's folder), or None for the built-in."""
    value = getattr(profile, key, None)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        source = getattr(profile, "source", None)
        path = Path(os.path.abspath((Path(source).expanduser().parent if source
                                     else Path.cwd()) / path))
    return path


def job_template(profile: Profile | None, key: str) -> JobTemplate:
    """The template ``key`` of ``profile`` (the built-in when it names none)."""
    if key not in TEMPLATE_KEYS:
        raise ValueError(f"unknown template key {key!r}")
    if profile is None:
        return JobTemplate(key)
    return JobTemplate(key, template_path(profile, key), f"profile {profile.name}: {key}")


def _fail(template: JobTemplate, exc: BaseException) -> InputError:
    """A Jinja (or other rendering) error as one line ``FILE:LINE: message (where)``."""
    import jinja2

    from ..templates import error_location

    filename, line = error_location(exc)
    place = f"{filename or template.path}" + (f":{line}" if line else "")
    if isinstance(exc, jinja2.TemplateNotFound):
        message = f"template {exc.name!r} not found (built-ins are slurm_templates/NAME)"
    elif isinstance(exc, RecursionError):
        message = "the template extends or includes itself"
    else:
        message = (str(getattr(exc, "message", None) or exc) or type(exc).__name__)
        message = message.splitlines()[0]
    extra = ""
    if isinstance(exc, jinja2.UndefinedError):
        extra = f"; a {template.key} gets: {', '.join(template.variables)}"
    return InputError(f"{place}: {message} ({template.where}{extra})")


def _load(template: JobTemplate):
    """The site template, compiled; missing/unreadable files and syntax errors as
    :class:`InputError`."""
    import jinja2

    from ..templates import site_environment

    path = template.path
    assert path is not None
    if not path.is_file():
        what = "not a file" if path.exists() else "no such template file"
        raise InputError(f"{path}: {what} ({template.where})")
    env = site_environment(str(path.parent))
    try:
        return env, env.get_template(path.name)
    except jinja2.TemplateSyntaxError as exc:
        raise _fail(template, exc) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the template: "
                         f"{getattr(exc, 'strerror', None) or exc} ({template.where})") from None


def check_template(template: JobTemplate) -> None:
    """Check a site template before anything is submitted: the file, its syntax and that
    every variable it reads is one the job script gets (``FILE:LINE`` of the first other)."""
    if template.path is None:
        return
    from jinja2 import meta, nodes

    env, _compiled = _load(template)
    source = template.path.read_text(encoding="utf-8")
    tree = env.parse(source, template.path.name, str(template.path))
    unknown = meta.find_undeclared_variables(tree) - set(env.globals) - set(template.variables)
    if unknown:
        first = min((n.lineno, n.name) for n in tree.find_all(nodes.Name)
                    if n.ctx == "load" and n.name in unknown)
        raise InputError(f"{template.path}:{first[0]}: {first[1]!r} is undefined "
                         f"({template.where}; a {template.key} gets: "
                         f"{', '.join(template.variables)})")


def check_profile_templates(profile: Profile, keys: Sequence[str]) -> None:
    """:func:`check_template` for the profile's site templates among ``keys``."""
    for key in keys:
        check_template(job_template(profile, key))


def render_job(template: JobTemplate, context: Mapping[str, object]) -> str:
    """The job script: the site template when there is one, else the built-in."""
    from ..templates import render

    if template.path is None:
        return render(template.builtin, context)
    _env, compiled = _load(template)
    try:
        text = compiled.render(dict(context))
    except Exception as exc:  # noqa: BLE001 - any error of a site template is the site's input
        raise _fail(template, exc) from None
    if not text.startswith("#!"):
        raise InputError(f"{template.path}: the job script must start with '#!' (as "
                         f"sbatch requires; got {text[:20]!r}) ({template.where})")
    return text


def check_job_templates(profile: Profile, key: str) -> None:
    """Before a job command connects: the profile's ``key`` template and, when its images
    are built by a SLURM job, its ``build_template``."""
    keys = [key, *(["build_template"] if getattr(profile, "build", None) == "slurm" else [])]
    check_profile_templates(profile, keys)
