"""Two-factor login against a real sshd (key + keyboard-interactive through PAM)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hpc_dl4mic.errors import RemoteError
from hpc_dl4mic.remote.connection import SshHost
from hpc_dl4mic.remote.target import ssh_target

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def twofa(cluster):
    env = dict(line.split("=", 1) for line in
               (cluster.base / "cluster.env").read_text().splitlines() if "=" in line)
    return {"port": int(env["TWOFA_PORT"]), "known_hosts": Path(env["TWOFA_KNOWN_HOSTS"]),
            "secret": Path(env["TWOFA_SECRET_FILE"]).read_text().strip()}


def target(cluster, twofa):
    base = ssh_target(cluster.host, user=cluster.user, port=twofa["port"],
                      identity=cluster.key)
    return replace(base, known_hosts=(twofa["known_hosts"],))


def test_second_factor_is_asked_once_for_a_whole_command(cluster, twofa, tmp_path):
    asked = []

    def handler(title, instructions, prompts):
        if prompts:
            asked.append([p for p, _ in prompts])
        return [twofa["secret"] for _ in prompts]

    with SshHost.open(target(cluster, twofa), kbd_handler=handler) as conn:
        assert conn.run(["id", "-un"]).stdout.strip() == cluster.user
        path = f"{conn.home()}/twofa-{os.getpid()}.txt"
        conn.write_file(path, "x")
        assert conn.read_file(path) == b"x"
        conn.run(["rm", "-f", path])
        assert conn.run(["true"]).returncode == 0
    assert len(asked) == 1


def test_wrong_second_factor_is_an_authentication_error(cluster, twofa):
    with pytest.raises(RemoteError, match="authentication failed"):
        SshHost.open(target(cluster, twofa),
                        kbd_handler=lambda t, i, prompts: ["wrong" for _ in prompts])


def profiles_file(cluster, twofa, tmp_path) -> Path:
    path = tmp_path / "profiles.yaml"
    path.write_text(
        "profiles:\n  twofa:\n"
        f"    host: {cluster.host}\n    port: {twofa['port']}\n    user: {cluster.user}\n"
        f"    identity: {cluster.key}\n    known_hosts: {twofa['known_hosts']}\n"
        "    partition: cpu\n")
    return path


def test_without_a_terminal_a_needed_second_factor_is_a_clear_error(cluster, twofa, tmp_path):
    out = subprocess.run([sys.executable, "-m", "hpc_dl4mic.cli", "profile", "test", "twofa",
                          "--profile-file", str(profiles_file(cluster, twofa, tmp_path))],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert out.returncode == 1
    assert "terminal" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_on_a_terminal_the_cli_asks_once_and_works(cluster, twofa, tmp_path):
    argv = [sys.executable, "-m", "hpc_dl4mic.cli", "profile", "test", "twofa",
            "--profile-file", str(profiles_file(cluster, twofa, tmp_path))]
    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI on a real terminal
        os.execv(sys.executable, argv)
    output, prompts, deadline = b"", 0, time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if output.count(b"Password:") > prompts:
                prompts += 1
                os.write(fd, twofa["secret"].encode() + b"\n")
    finally:
        _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert prompts == 1, text
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "ok       sbatch" in text
