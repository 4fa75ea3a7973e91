"""More users of the local test cluster than up.sh's one (root only, idempotent, kept
between runs): a plain second user (test_secrets_real), or one that can also log in over
SSH with a key of its own, run apptainer through the cluster's sudo shim and share a
group-writable image cache (test_build_lock_real)."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from clusterinfo import ClusterInfo

SHIM = "/usr/local/libexec/apptainer-shim"  # tests/cluster/install-apptainer.sh


@dataclass(frozen=True)
class ClusterUser:
    name: str
    home: Path
    key: Path | None  # its SSH private key on this machine (None: it cannot log in)


def _run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, timeout=60, stdin=subprocess.DEVNULL,
                   capture_output=True)


def ensure_user(name: str, cluster: ClusterInfo | None = None, *, login: bool = False,
                groups: tuple[str, ...] = (), apptainer: bool = False) -> ClusterUser:
    """The user ``name``, created when missing (no home unless ``login``). ``login``: a
    home, an unlocked account (sshd refuses '!') and an ed25519 key in
    ``$BASE/client/id_ed25519_NAME`` authorized for it; ``groups``: supplementary groups;
    ``apptainer``: a sudoers drop-in for the apptainer shim, as up.sh gives its user."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        _run("useradd", *(["-m"] if login else ["-M"]), "-s", "/bin/sh", name)
        entry = pwd.getpwnam(name)
    home = Path(entry.pw_dir)
    key = None
    if groups:
        missing = [g for g in groups if name not in grp.getgrnam(g).gr_mem]
        if missing:
            _run("usermod", "-aG", ",".join(missing), name)
    if login:
        if cluster is None:
            raise ValueError("a user that logs in needs the cluster (its key folder)")
        if not home.is_dir():
            _run("install", "-d", "-m", "755", "-o", name, "-g", str(entry.pw_gid), str(home))
        if subprocess.run(["passwd", "-S", name], capture_output=True, text=True,
                          timeout=30).stdout.split()[1:2] != ["P"]:
            subprocess.run(["chpasswd"], input=f"{name}:{os.urandom(12).hex()}\n", text=True,
                           check=True, timeout=30)
        key = cluster.base / "client" / f"id_ed25519_{name}"
        if not key.exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key))
        ssh = home / ".ssh"
        _run("install", "-d", "-m", "700", "-o", name, "-g", str(entry.pw_gid), str(ssh))
        _run("install", "-m", "600", "-o", name, "-g", str(entry.pw_gid),
             f"{key}.pub", str(ssh / "authorized_keys"))
    if apptainer:
        rule = Path(f"/etc/sudoers.d/hpc-dl4mic-apptainer-{name}")
        text = f"{name} ALL=(root) NOPASSWD: {SHIM}\n"
        if not rule.exists() or rule.read_text() != text:
            tmp = rule.with_name(rule.name + ".tmp")  # sudo skips names with a dot
            tmp.write_text(text)
            tmp.chmod(0o440)
            _run("visudo", "-qcf", str(tmp))
            tmp.replace(rule)
    return ClusterUser(name, home, key)
