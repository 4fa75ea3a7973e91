"""A private sshd for fault tests: the cluster's host key and the test user's authorized
keys (as tests/cluster/up.sh's 2FA sshd), on its own port and PID file, so that a test may
stop, restart or cut the connections of this one without touching the shared sshds; or let
in more users than the shared sshd's one (``allow_users``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from clusterinfo import ClusterInfo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(stat.parent.name))
    return tree


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first found, deepest last)."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


class OwnSshd:
    """``sshd`` on 127.0.0.1:PORT, started from a test fixture (root) and stopped by it."""

    def __init__(self, cluster: ClusterInfo, folder: Path,
                 allow_users: tuple[str, ...] = ()) -> None:
        self.cluster = cluster
        self.folder = folder
        self.port = free_port()
        self.pid_file = folder / "sshd.pid"
        self.log = folder / "sshd.log"
        self.config = folder / "sshd_config"
        host_key = cluster.base / "sshd" / "ssh_host_ed25519_key"
        self.config.write_text(
            "ListenAddress 127.0.0.1\n"
            f"Port {self.port}\n"
            f"HostKey {host_key}\n"
            f"PidFile {self.pid_file}\n"
            "AuthorizedKeysFile .ssh/authorized_keys\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin no\n"
            f"AllowUsers {' '.join(allow_users or (cluster.user,))}\n"
            "UsePAM no\nAllowTcpForwarding yes\n"
            "X11Forwarding no\nPrintMotd no\n"
            "Subsystem sftp internal-sftp\n"
            "MaxStartups 50:30:100\nMaxSessions 50\nLogLevel INFO\n")
        self.known_hosts = folder / "known_hosts"
        key = (cluster.base / "sshd" / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {' '.join(key)}\n")

    @property
    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        """Start it (it daemonizes) and wait until it listens."""
        subprocess.run(["/usr/sbin/sshd", "-f", str(self.config), "-E", str(self.log)],
                       check=True, stdin=subprocess.DEVNULL, timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"own sshd does not listen on {self.port}:\n{self.log.read_text()}")

    def cut_connections(self) -> None:
        """Kill every connection of this sshd (its per-connection children); it keeps
        listening."""
        if self.pid:
            _kill(descendants(self.pid))

    def stop(self) -> None:
        """Kill it and every connection it serves (as a crash or a restart that drops
        sessions)."""
        pid = self.pid
        if pid is None:
            return
        _kill([pid, *descendants(pid)])
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if "Z" in _state(pid):
                break
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def profile_text(self, base_profile: Path) -> str:
        """``base_profile``'s text pointed at this sshd."""
        text = base_profile.read_text()
        text = text.replace(f"port: {self.cluster.port}\n", f"port: {self.port}\n")
        return text.replace(str(self.cluster.known_hosts), str(self.known_hosts))


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""
