"""What a job needs on its host before it is submitted, shared by sessions, command runs,
GPU checks and batch runs: the data and results folders (resolved and checked in one
round trip), the image in the profile's cache, uploaded data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..remote.host import absolute
from .options import SubmitOptions, parse_upload
from .records import Say

if TYPE_CHECKING:
    from ..remote.host import Host
    from ..remote.profiles import Profile


PATH_CHECK = r"""
umask 077
status=0
while [ $# -gt 0 ]; do
    opt=$1; path=$2; shift 2
    if [ -e "$path" ] && [ ! -d "$path" ]; then
        echo "$opt	$path: not a folder"; status=1; continue
    fi
    if ! err=$(mkdir -p -- "$path" 2>&1); then
        echo "$opt	$path: cannot be created (${err##*: })"; status=1; continue
    fi
    if ! probe=$(mktemp "$path/.hpc-dl4mic-probe.XXXXXX" 2>/dev/null); then
        echo "$opt	$path: not writable"; status=1; continue
    fi
    rm -f -- "$probe"
done
exit $status
"""


def check_folders(host: Host, folders: list[tuple[str, str]]) -> None:
    """Make each (option, path) a folder on the host (0700 when new) and check that it is
    writable: one round trip; the first problem is a one-line error naming the option."""
    argv = ["sh", "-c", PATH_CHECK, "hpc-dl4mic"]
    for option, path in folders:
        argv += [option, path]
    result = host.run(argv, check=False, timeout=60)
    if result.returncode != 0:
        line = (result.stdout.strip() or result.stderr.strip() or "?").splitlines()[0]
        option, _, problem = line.partition("\t")
        raise InputError(f"{option} {problem}" if problem else f"data/results folders: {line}")


def check_job_paths(work: str, data: str, results: str) -> None:
    """Refuse folders a job script cannot name literally: ``,`` or ``:`` in data/results
    (apptainer --bind syntax); ``"``, ``\\`` or ``%`` in the work or results folder (they
    are in #SBATCH --output lines: sbatch's parser and its filename patterns); control
    characters anywhere."""
    for option, path in (("profile work_dir", work), ("--data", data), ("--results", results)):
        if re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", path):
            raise InputError(f"{option} {path!r}: line breaks and other control characters "
                             "are not allowed in a path")
        if option != "profile work_dir" and any(c in path for c in ",:"):
            raise InputError(f"{option} {path}: a data/results path may not contain ',' or ':' "
                             "(apptainer --bind syntax)")
        if option != "--data" and any(c in path for c in '"\\%'):
            raise InputError(f"{option} {path}: may not contain '\"', '\\' or '%' (the job "
                             "script names it in an #SBATCH line)")


@dataclass(frozen=True)
class Folders:
    """A session's folders on the host, resolved and checked before anything is built."""

    work: str
    data: str
    results: str
    upload: tuple[Path, str] | None = None


def prepare_folders(host: Host, profile: Profile, options: SubmitOptions) -> Folders:
    """Resolve ``--data``/``--results`` on the host (``~`` its home, a relative path under
    its working folder), make them and check that they are writable folders: each problem
    is a one-line error naming the option."""
    home = host.home()
    cwd = host.cwd()
    work = profile.remote_work_dir(home)
    data_dir = absolute(options.data or profile.data_dir or f"{work}/data", home=home, cwd=cwd)
    results_dir = absolute(options.results or profile.results_dir or f"{work}/results",
                           home=home, cwd=cwd)
    check_job_paths(work, data_dir, results_dir)
    upload = parse_upload(options.upload) if options.upload else None
    check_folders(host, [("--data", data_dir), ("--results", results_dir)])
    return Folders(work=work, data=data_dir, results=results_dir, upload=upload)


def session_image(inputs, host: Host, profile: Profile, *, progress: Say):
    """The session's image in the profile's cache on its host (this machine's cache for
    ``--local``), built there when missing."""
    from ..images.build import build_for_profile

    return build_for_profile(inputs, host, profile, progress=progress)


def upload_data(host: Host, local: Path, remote: str, *, say: Say) -> int:
    """Copy a local folder to ``remote`` on the host (:meth:`Host.put_tree`: changed files
    only, links left out, checksummed); returns how many files were copied."""
    local = Path(local).expanduser()
    if not local.is_dir():
        raise InputError(f"--upload {local}: not a folder")
    report = host.put_tree(local, remote)
    links = f" ({report.links} link(s) left out)" if report.links else ""
    say(f"uploaded {len(report.copied)} changed file(s) from {local} to {remote}{links}")
    return len(report.copied)


def job_profile(profile_name: str | None, run_local: bool,
                profile_file: Path | None = None) -> Profile:
    """The profile a job command runs with: ``--local``'s pseudo-profile, the named one,
    or an error saying how to name one (option checks for --local come first)."""
    from ..remote.hosts import local_profile
    from ..remote.profiles import get_profile

    if run_local:
        return local_profile()
    if profile_name:
        return get_profile(profile_name, profile_file)
    raise InputError("name a cluster profile with --profile (or set HPC_DL4MIC_PROFILE), "
                     "or run on this machine with --local")


def job_image(host: Host, profile: Profile, config, build: dict, *, say: Say,
              progress: Say | None = None):
    """(inputs, image) of ``config`` for a job on ``host``: keyed where the image is used
    (a localimage base read on the host), found in or built into the profile's cache."""
    from ..images.build import prepare_notebook_image, remote_base_digest

    inputs = prepare_notebook_image(
        config, **build, **({} if host.local else {"digest": remote_base_digest(host)}))
    image = session_image(inputs, host, profile, progress=progress or say)
    say(f"image {'found in the cache' if image.cached else 'built'}: {image.path}")
    return inputs, image


def upload_folder(host: Host, folders: Folders, *, say: Say, seen_in: str) -> None:
    """``--upload``, when given: the folder into ``DATA/DEST``; says where ``seen_in`` (the
    notebook, the container) finds it."""
    if folders.upload is not None:
        local_dir, dest = folders.upload
        upload_data(host, local_dir, f"{folders.data}/{dest}", say=say)
        say(f"your data is at /data/{dest} in {seen_in}")
