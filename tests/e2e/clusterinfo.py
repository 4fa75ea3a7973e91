"""The local test cluster as the end-to-end tests see it: what tests/cluster/up.sh wrote to
$BASE/cluster.env, plus a helper to run a command as the test user over OpenSSH."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClusterInfo:
    host: str
    port: int
    user: str
    key: Path
    known_hosts: Path
    node: str
    user_home: Path
    shared_cache: Path
    base: Path

    def ssh_argv(self, command: str | Sequence[str] | None = None) -> list[str]:
        """argv for OpenSSH as the test user (strict host key checking, no prompts).

        A sequence is joined with spaces by ssh and run by the remote login shell, so quote
        any argument that needs it (shlex.join)."""
        argv = [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "ConnectTimeout=10",
            "-i", str(self.key),
            "-p", str(self.port),
            f"{self.user}@{self.host}",
        ]
        if command is None:
            return argv
        if isinstance(command, str):
            return [*argv, command]
        return [*argv, *command]

    def ssh(self, command: str | Sequence[str], *, timeout: float = 60, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run COMMAND on the cluster as the test user; raise with its output on failure."""
        proc = subprocess.run(
            self.ssh_argv(command), input=input, capture_output=True, text=True, timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ssh {command!r} exited {proc.returncode}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        return proc


def parse_cluster_env(path: Path) -> ClusterInfo:
    """Parse KEY=VALUE lines (as written by up.sh) into a ClusterInfo."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    required = ("SSH_HOST", "SSH_PORT", "SSH_USER", "SSH_KEY", "KNOWN_HOSTS", "NODE",
                "USER_HOME", "SHARED_CACHE")
    missing = [k for k in required if k not in values]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    return ClusterInfo(
        host=values["SSH_HOST"],
        port=int(values["SSH_PORT"]),
        user=values["SSH_USER"],
        key=Path(values["SSH_KEY"]),
        known_hosts=Path(values["KNOWN_HOSTS"]),
        node=values["NODE"],
        user_home=Path(values["USER_HOME"]),
        shared_cache=Path(values["SHARED_CACHE"]),
        base=Path(values.get("BASE", str(path.parent))),
    )
