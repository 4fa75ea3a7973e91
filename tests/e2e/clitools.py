"""The CLI as the e2e tests call it: a subprocess of this Python with the module's own XDG
environment, no stdin; and the wait on a batch run's tasks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

CA_CERTS = Path("/usr/local/share/ca-certificates")


def cli(env, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`hpc-dl4mic ARGS` with ``env``; output captured as text."""
    return subprocess.run([sys.executable, "-m", "hpc_dl4mic.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def ca_args() -> list[str]:
    """`--ca-certs DIR` where this machine has site CA certificates (a proxy's), else none."""
    return ["--ca-certs", str(CA_CERTS)] if any(CA_CERTS.glob("*.crt")) else []


def ended(tasks: list[dict]) -> bool:
    return all(t["state"] not in ("pending", "running") for t in tasks)


def wait_for(env, run_id: str, done, timeout: float = 300) -> list[dict]:
    """Poll `batch status RUN --json` until ``done(tasks)``; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        out = cli(env, "batch", "status", run_id, "--json", timeout=120)
        assert out.returncode == 0, out.stderr
        tasks = json.loads(out.stdout)
        if done(tasks):
            return tasks
        if time.monotonic() > deadline:
            raise AssertionError(f"batch run {run_id} not done in {timeout} s: {tasks}")
        time.sleep(2)
