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

A built-in ``localhost`` profile points at the project's local test cluster.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..fsutil import atomic_write, config_home

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
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gres: str | None = None
    gpus: str | None = None
    cpus: int | None = None
    mem: str | None = None
    time: str | None = None
    modules: tuple[str, ...] = ()
    sbatch_extra: tuple[str, ...] = ()
    data_dir: str | None = None
    results_dir: str | None = None
    apptainer: str = "apptainer"
    builtin: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["modules"] = list(self.modules)
        data["sbatch_extra"] = list(self.sbatch_extra)
        return {k: v for k, v in data.items() if v not in (None, [], ())}

    def ssh_target(self):
        """The :class:`hpc_dl4mic.ssh.SshTarget` for this profile (``~/.ssh/config`` applied)."""
        from .ssh import resolve_target

        target = resolve_target(self.host, user=self.user, port=self.port,
                                identity=Path(self.identity).expanduser() if self.identity
                                else None, proxy_jump=self.proxy_jump)
        if self.known_hosts:
            from dataclasses import replace

            target = replace(target, known_hosts=(Path(self.known_hosts).expanduser(),))
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


FIELD_TYPES = {f.name: f.type for f in fields(Profile)}
INT_FIELDS = ("port", "cpus")
LIST_FIELDS = ("modules", "sbatch_extra")


def default_profile_file() -> Path:
    return config_home() / "profiles.yaml"


def local_cluster_profile() -> Profile:
    """The built-in ``localhost`` profile: the local test cluster (tests/cluster/up.sh)."""
    base = Path(os.environ.get(LOCAL_CLUSTER_ENV, LOCAL_CLUSTER_DEFAULT))
    env: dict[str, str] = {}
    env_file = base / "cluster.env"
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                env[key.strip()] = value.strip()
    return Profile(
        name="localhost", host=env.get("SSH_HOST", "127.0.0.1"),
        user=env.get("SSH_USER", "hpcuser"), port=int(env.get("SSH_PORT", "2222")),
        identity=env.get("SSH_KEY", str(base / "client" / "id_ed25519")),
        known_hosts=env.get("KNOWN_HOSTS", str(base / "client" / "known_hosts")),
        cache_dir=env.get("SHARED_CACHE", "/srv/hpc-dl4mic-cache"), build="login",
        partition=env.get("GPU_PARTITION", "gpu"), gres="gpu:1", time="01:00:00",
        builtin=True,
    )


def _coerce(path: Path, name: str, key: str, value: Any) -> Any:
    where = f"{path}: profiles.{name}.{key}"
    if key not in FIELD_TYPES or key in ("name", "builtin"):
        allowed = ", ".join(k for k in FIELD_TYPES if k not in ("name", "builtin"))
        raise InputError(f"{where}: unknown key; allowed: {allowed}")
    if value is None:
        return None
    if key in INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(f"{where}: expected a positive whole number, got {value!r}")
        return value
    if key in LIST_FIELDS:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"{where}: expected a list of strings")
        return tuple(value)
    if key == "build" and value not in BUILD_MODES:
        raise InputError(f"{where}: {value!r} is not one of {', '.join(BUILD_MODES)}")
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InputError(f"{where}: expected a string, got {value!r}")
    return str(value)


def load_profiles(path: Path | None = None) -> dict[str, Profile]:
    """All profiles: the file's plus the built-in ``localhost`` (the file may override it)."""
    import yaml

    path = Path(path).expanduser() if path else default_profile_file()
    profiles = {"localhost": local_cluster_profile()}
    if not path.is_file():
        return profiles
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read profiles: {str(exc).splitlines()[0]}") from None
    table = doc.get("profiles") if isinstance(doc, dict) else None
    if not isinstance(table, dict):
        raise InputError(f"{path}: expected a top-level 'profiles:' mapping")
    for name, body in table.items():
        if not isinstance(body, dict):
            raise InputError(f"{path}: profiles.{name}: expected a mapping")
        values = {k: _coerce(path, str(name), str(k), v) for k, v in body.items()}
        if not values.get("host"):
            raise InputError(f"{path}: profiles.{name}.host: required (an ssh host or alias)")
        profiles[str(name)] = Profile(name=str(name), **values)
    return profiles


def get_profile(name: str, path: Path | None = None) -> Profile:
    profiles = load_profiles(path)
    if name not in profiles:
        raise InputError(f"no profile named {name!r}; known: {', '.join(sorted(profiles))} "
                         "(add one with `hpc-dl4mic profile add`)")
    return profiles[name]


def save_profile(profile: Profile, path: Path | None = None) -> Path:
    """Add or replace ``profile`` in the profiles file (written atomically, mode 0600)."""
    import yaml

    path = Path(path).expanduser() if path else default_profile_file()
    doc: dict[str, Any] = {}
    if path.is_file():
        doc = yaml.safe_load(path.read_text()) or {}
    table = doc.setdefault("profiles", {})
    body = profile.to_dict()
    body.pop("name", None)
    body.pop("builtin", None)
    table[profile.name] = body
    return atomic_write(path, yaml.safe_dump(doc, sort_keys=False), mode=0o600)


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str


def check_profile(profile: Profile, conn) -> list[Check]:
    """What `profile test` reports: SLURM, apptainer (after module loads), the cache dir."""
    from ..jobs.slurm import with_modules

    checks: list[Check] = [Check("ssh", True, f"connected to {conn.target.display}")]
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
    if profile.partition:
        result = conn.run(["sinfo", "-h", "-p", profile.partition, "-o", "%P %a"], check=False,
                          timeout=60)
        checks.append(Check("partition", result.returncode == 0 and bool(result.stdout.strip()),
                            result.stdout.strip() or f"{profile.partition}: not found"))
    return checks
