"""Cluster profiles: how to reach a cluster and what to ask its scheduler for.

Profiles live in ``$XDG_CONFIG_HOME/hpc-dl4mic/profiles.yaml`` (or ``--profile-file``)::

    profiles:
      mycluster:
        host: hpc-login            # an ~/.ssh/config alias is enough
        user: jdoe                 # optional (ssh config / local user otherwise)
        port: 22
        identity: ~/.ssh/id_ed25519
        proxy_jump: jump.example.org
        work_dir: /scratch/jdoe/hpc-dl4mic     # remote; default ~/.hpc-dl4mic
        cache_dir: /shared/hpc-dl4mic/images    # remote image cache; default WORK_DIR/images
        build: slurm               # where `build --on` runs: slurm (a build job) or login
        partition: gpu
        gres: gpu:1
        modules: [apptainer]       # `module load` before apptainer
        node_internet: false       # the compute nodes have internet
        connect_timeout: 15        # seconds to reach the login node (default 15)

The resource keys (partition ... qos) are :class:`~hpc_dl4mic.jobs.resources.JobResources`'s
fields, flat at the profile level in the file and grouped in :attr:`Profile.resources`.

A built-in ``local-cluster`` profile points at the project's local test cluster
(``localhost``: its deprecated alias). Values are read as written (``time: 4:00:00`` is a
string, not YAML 1.1's base-60 number); a broken entry does not hide the others
(:func:`read_profiles`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..fsutil import atomic_write, config_home
from ..jobs.resources import (
    INT_RESOURCES,
    RESOURCE_FIELDS,
    JobResources,
    check_resource,
)

LOCAL_CLUSTER_ENV = "HPC_DL4MIC_CLUSTER"
LOCAL_CLUSTER_DEFAULT = "/tmp/hpc-dl4mic-cluster"
BUILD_MODES = ("slurm", "login")


@dataclass(frozen=True)
class Profile:
    """One cluster."""

    name: str
    host: str
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    proxy_jump: str | None = None
    known_hosts: str | None = None
    work_dir: str | None = None
    cache_dir: str | None = None
    build: str = "slurm"
    resources: JobResources = JobResources()  # flat keys in the file (partition: gpu)
    modules: tuple[str, ...] = ()
    sbatch_extra: tuple[str, ...] = ()
    data_dir: str | None = None
    results_dir: str | None = None
    apptainer: str = "apptainer"
    node_internet: bool = False  # the compute nodes have internet
    connect_timeout: int | None = None  # seconds for TCP connect + SSH handshake
    # site job-script templates (jobs/site_templates.py): as written; a relative path is
    # from the profiles file's folder (``source``)
    job_template: str | None = None
    batch_template: str | None = None
    command_template: str | None = None
    build_template: str | None = None
    builtin: bool = field(default=False, compare=False)
    source: str | None = field(default=None, compare=False)  # the profiles file it came from

    def to_dict(self) -> dict[str, Any]:
        """The profile as profiles.yaml holds it: resources flat, unset keys left out."""
        data: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "source":
                continue
            value = getattr(self, f.name)
            if f.name == "resources":
                data.update(value.to_dict())
            else:
                data[f.name] = list(value) if isinstance(value, tuple) else value
        return {k: v for k, v in data.items() if v not in (None, [], ())}

    def ssh_target(self):
        """The :class:`~hpc_dl4mic.remote.target.SshTarget` for this profile (~/.ssh/config
        applied)."""
        from .target import ssh_target

        target = ssh_target(self.host, user=self.user, port=self.port,
                            identity=Path(self.identity).expanduser() if self.identity
                            else None, proxy_jump=self.proxy_jump)
        from dataclasses import replace

        if self.known_hosts:
            target = replace(target, known_hosts=(Path(self.known_hosts).expanduser(),))
        if self.connect_timeout:
            target = replace(target, connect_timeout=float(self.connect_timeout))
        return target

    def remote_work_dir(self, home: str) -> str:
        return _expand_remote(self.work_dir or "~/.hpc-dl4mic", home)

    def remote_cache_dir(self, home: str) -> str:
        if self.cache_dir:
            return _expand_remote(self.cache_dir, home)
        return self.remote_work_dir(home).rstrip("/") + "/images"


def _expand_remote(path: str, home: str) -> str:
    if path == "~" or path.startswith("~/"):
        return home.rstrip("/") + path[1:]
    return path


# The keys of a profile in the file, in order: the resources' fields in place of `resources`.
PROFILE_KEYS = tuple(k for f in fields(Profile) if f.name not in ("name", "builtin", "source")
                     for k in (RESOURCE_FIELDS if f.name == "resources" else (f.name,)))
INT_FIELDS = ("port", "connect_timeout", *INT_RESOURCES)
LIST_FIELDS = ("modules", "sbatch_extra")
BOOL_FIELDS = ("node_internet",)
STRING_FIELDS = tuple(k for k in PROFILE_KEYS if k not in (*INT_FIELDS, *LIST_FIELDS,
                                                           *BOOL_FIELDS))
PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# folders a job script names in #SBATCH lines (sbatch's parser: no " or \\; % is its pattern)
SBATCH_PATH_FIELDS = ("work_dir", "cache_dir", "results_dir")
PATH_FIELDS = (*SBATCH_PATH_FIELDS, "data_dir")
BUILTIN_NAME = "local-cluster"
DEPRECATED_ALIASES = {"localhost": BUILTIN_NAME}  # old name: new name
BUILTIN_NAMES = (BUILTIN_NAME, *DEPRECATED_ALIASES)  # refused as names of the file's profiles


def default_profile_file() -> Path:
    return config_home() / "profiles.yaml"


def local_cluster_profile() -> Profile:
    """The built-in ``local-cluster`` profile: the local test cluster (tests/cluster/up.sh)."""
    base = Path(os.environ.get(LOCAL_CLUSTER_ENV, LOCAL_CLUSTER_DEFAULT))
    env: dict[str, str] = {}
    env_file = base / "cluster.env"
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                env[key.strip()] = value.strip()
    return Profile(
        name=BUILTIN_NAME, host=env.get("SSH_HOST", "127.0.0.1"),
        user=env.get("SSH_USER", "hpcuser"), port=int(env.get("SSH_PORT", "2222")),
        identity=env.get("SSH_KEY", str(base / "client" / "id_ed25519")),
        known_hosts=env.get("KNOWN_HOSTS", str(base / "client" / "known_hosts")),
        cache_dir=env.get("SHARED_CACHE", "/srv/hpc-dl4mic-cache"), build="login",
        resources=JobResources(partition=env.get("GPU_PARTITION", "gpu"), gres="gpu:1",
                               time="01:00:00"),
        builtin=True,
    )


def _coerce(path: Path, name: str, key: str, value: Any) -> Any:
    """One profile value checked and normalised (the same rules for loading and saving)."""
    where = f"{path}: profiles.{name}.{key}"
    if key not in PROFILE_KEYS:
        raise InputError(f"{where}: unknown key; allowed: {', '.join(PROFILE_KEYS)}")
    if key in RESOURCE_FIELDS:
        return check_resource(key, value, where)
    if value is None:
        return None
    if isinstance(value, str) or (isinstance(value, (list, tuple)) and key in LIST_FIELDS):
        for text in [value] if isinstance(value, str) else value:
            if isinstance(text, str) and CONTROL.search(text):
                raise InputError(f"{where}: {text!r}: line breaks and other control "
                                 "characters are not allowed")
    if key in PATH_FIELDS and isinstance(value, str):
        bad = '"\\%' if key in SBATCH_PATH_FIELDS else ""
        bad += ",:" if key in ("data_dir", "results_dir") else ""
        found = sorted({c for c in value if c in bad})
        if found:
            raise InputError(f"{where}: {value!r}: may not contain "
                             f"{' or '.join(repr(c) for c in found)} (job scripts and "
                             "apptainer --bind name this folder)")
    if key in INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(f"{where}: expected a positive whole number, got {value!r}")
        if key == "port" and value > 65535:
            raise InputError(f"{where}: expected a port number 1-65535, got {value!r}")
        return value
    if key in BOOL_FIELDS:
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, got {value!r}")
        return value
    if key in LIST_FIELDS:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise InputError(f"{where}: expected a list of strings")
        return tuple(value)
    if key == "build" and value not in BUILD_MODES:
        raise InputError(f"{where}: {value!r} is not one of {', '.join(BUILD_MODES)}")
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InputError(f"{where}: expected a string, got {value!r}")
    return str(value)


def _check_name(path: Path, name: str) -> None:
    if not PROFILE_NAME.match(name):
        raise InputError(f"{path}: profile name {name!r}: use letters, digits and _.- "
                         "(starting with a letter or digit)")


def _profile(path: Path, name: str, body: Any) -> Profile:
    """The profile ``name`` of the file ``path`` from its YAML mapping ``body``."""
    _check_name(path, name)
    if not isinstance(body, dict):
        raise InputError(f"{path}: profiles.{name}: expected a mapping")
    values = {str(k): _coerce(path, name, str(k), v) for k, v in body.items()}
    if not values.get("host"):
        raise InputError(f"{path}: profiles.{name}.host: required (an ssh host or alias)")
    resources = JobResources(**{k: values.pop(k) for k in RESOURCE_FIELDS if k in values})
    return Profile(name=name, resources=resources, source=str(path),
                   **{k: v for k, v in values.items() if v is not None})


def _as_written(root: Any) -> None:
    """Retag ``profiles.NAME.KEY`` scalars of string keys so they stay as the user wrote them
    (``partition: 007`` is ``'007'``, not 7)."""
    import yaml

    from ..yamlio import as_written

    def pairs(node: Any) -> list:
        return node.value if isinstance(node, yaml.MappingNode) else []

    for key, table in pairs(root):
        if key.value == "profiles":
            for _name, body in pairs(table):
                for field_key, value in pairs(body):
                    if field_key.value in (*STRING_FIELDS, *LIST_FIELDS):
                        as_written(value)


def _profile_path(path: Path | None) -> Path:
    return Path(path).expanduser() if path else default_profile_file()


def _read_table(path: Path, *, must_exist: bool) -> dict[str, Any]:
    """The whole file as a dict with a ``profiles`` mapping ({} when it may be missing)."""
    from ..yamlio import load_yaml

    if not path.is_file():
        if must_exist or path.exists():
            raise InputError(f"{path}: no such profiles file (--profile-file; "
                             "`hpc-dl4mic profile add` creates it)")
        return {"profiles": {}}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read profiles: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    doc = load_yaml(text, path, prepare=_as_written)
    if doc is None:
        return {"profiles": {}}
    table = doc.get("profiles") if isinstance(doc, dict) else None
    if table is None and isinstance(doc, dict) and "profiles" in doc:
        doc["profiles"] = table = {}
    if not isinstance(table, dict):
        raise InputError(f"{path}: expected a top-level 'profiles:' mapping")
    return doc


def read_profiles(path: Path | None = None) -> tuple[dict[str, Profile], dict[str, InputError]]:
    """The usable profiles (file's plus the built-in ``local-cluster``, which the file may
    override) and, apart, the file's broken entries with their one-line errors.

    A ``path`` given explicitly must exist; the default file may be missing."""
    doc = _read_table(_profile_path(path), must_exist=path is not None)
    path = _profile_path(path)
    profiles = {BUILTIN_NAME: local_cluster_profile()}
    broken: dict[str, InputError] = {}
    for raw_name, body in doc["profiles"].items():
        name = str(raw_name)
        try:
            profiles[name] = _profile(path, name, body)
        except InputError as exc:
            broken[name] = exc
            profiles.pop(name, None)
    return profiles, broken


def load_profiles(path: Path | None = None, *,
                  warn: Callable[[str], None] | None = None) -> dict[str, Profile]:
    """The usable profiles; ``warn`` gets one line per broken entry of the file."""
    profiles, broken = read_profiles(path)
    for error in broken.values():
        if warn is not None:
            warn(str(error))
    return profiles


def _warn_stderr(line: str) -> None:
    import sys

    print(f"hpc-dl4mic: warning: {line}", file=sys.stderr)


def get_profile(name: str, path: Path | None = None, *,
                warn: Callable[[str], None] = _warn_stderr) -> Profile:
    """Profile ``name``; its own error when its entry in the file is broken. A deprecated
    alias of the built-in (``localhost``) gives the built-in, after one line to ``warn``,
    unless the file has a profile of that name (written before the rename)."""
    profiles, broken = read_profiles(path)
    if name in broken:
        raise broken[name]
    if name in DEPRECATED_ALIASES and name not in profiles:
        new = DEPRECATED_ALIASES[name]
        warn(f"profile {name!r} is a deprecated name of the built-in profile; use {new!r}")
        name = new
    if name not in profiles:
        raise InputError(f"no profile named {name!r}; known: {', '.join(sorted(profiles))} "
                         "(add one with `hpc-dl4mic profile add`)")
    return profiles[name]


def save_profile(profile: Profile, path: Path | None = None) -> Path:
    """Add or replace ``profile`` in the profiles file (written atomically, mode 0600) after
    checking it as loading would, and its site templates (file, syntax, variables); the
    file's other entries are kept as they are."""
    import yaml

    path = _profile_path(path)
    if profile.name in BUILTIN_NAMES:
        raise InputError(f"profile name {profile.name!r}: the built-in profile's name; "
                         "choose another name")
    doc = _read_table(path, must_exist=False)
    body = profile.to_dict()
    body.pop("name", None)
    body.pop("builtin", None)
    loaded = _profile(path, profile.name, body)
    from ..jobs.site_templates import TEMPLATE_KEYS, check_profile_templates

    check_profile_templates(loaded, TEMPLATE_KEYS)  # a broken site template saves nothing
    checked = loaded.to_dict()
    checked.pop("name", None)
    checked.pop("builtin", None)
    doc["profiles"][profile.name] = checked
    return atomic_write(path, yaml.safe_dump(doc, sort_keys=False), mode=0o600)


def profile_rows(profile: Profile) -> list[tuple[str, str]]:
    """``profile show``'s rows: each key and its value as written; a site template's path
    is followed by the file it names when that differs (a relative or ``~`` path)."""
    from ..jobs.site_templates import TEMPLATE_KEYS, template_path

    rows = []
    for key, value in profile.to_dict().items():
        resolved = template_path(profile, key) if key in TEMPLATE_KEYS else None
        rows.append((key, f"{value} ({resolved})" if resolved and str(resolved) != value
                     else f"{value}"))
    return rows


def remove_profile(name: str, path: Path | None = None) -> Path:
    """Remove ``name`` (even a broken entry) from the profiles file (written atomically)."""
    import yaml

    path = _profile_path(path)
    doc = _read_table(path, must_exist=True)
    if name not in doc["profiles"]:
        builtin = " (the built-in profile cannot be removed)" if name in BUILTIN_NAMES else ""
        known = ", ".join(sorted(str(n) for n in doc["profiles"])) or "none"
        raise InputError(f"{path}: no profile named {name!r}{builtin}; in this file: {known}")
    del doc["profiles"][name]
    return atomic_write(path, yaml.safe_dump(doc, sort_keys=False), mode=0o600)


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str


def check_profile(profile: Profile, conn) -> list[Check]:
    """What `profile test` reports: SLURM, apptainer (after module loads), the cache dir."""
    from ..jobs.slurm import with_modules

    checks: list[Check] = [Check("ssh", True, f"connected to {conn.display}")]
    home = conn.home()
    for tool in ("sbatch", "squeue", "scontrol", "scancel"):
        result = conn.run(with_modules(["sh", "-c", f"command -v {tool}"], profile.modules),
                          check=False, timeout=60)
        checks.append(Check(tool, result.returncode == 0,
                            result.stdout.strip() or "not found on PATH"))
    result = conn.run(with_modules([profile.apptainer, "--version"], profile.modules),
                      check=False, timeout=60)
    checks.append(Check("apptainer", result.returncode == 0,
                        (result.stdout or result.stderr).strip().splitlines()[-1]
                        if (result.stdout or result.stderr).strip() else "not found"))
    for label, path in (("work dir", profile.remote_work_dir(home)),
                        ("image cache", profile.remote_cache_dir(home))):
        result = conn.run(["sh", "-c", 'mkdir -p "$1" && test -w "$1" && echo "$1"', "sh",
                           path], check=False, timeout=60)
        checks.append(Check(label, result.returncode == 0,
                            path if result.returncode == 0 else f"{path}: not writable"))
    partition = profile.resources.partition
    if partition:
        result = conn.run(["sinfo", "-h", "-p", partition, "-o", "%P %a"], check=False,
                          timeout=60)
        checks.append(Check("partition", result.returncode == 0 and bool(result.stdout.strip()),
                            result.stdout.strip() or f"{partition}: not found"))
    return checks

