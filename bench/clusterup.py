"""The local test cluster for the benchmarks that need it (tunnel, submit latency, sweep).

As root, :func:`ensure_cluster` runs tests/cluster/up.sh (idempotent: ~1 s when the cluster is
up); otherwise it checks that the cluster answers and says how to start it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UP_SH = REPO / "tests" / "cluster" / "up.sh"
CLUSTER_BASE = Path(os.environ.get("HPC_DL4MIC_CLUSTER", "/tmp/hpc-dl4mic-cluster"))


def _parse(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def ensure_cluster() -> dict[str, str]:
    """cluster.env of the running local cluster (started first when we are root); exits
    with a one-line message when it is not up."""
    env_file = CLUSTER_BASE / "cluster.env"
    if os.geteuid() == 0 and not os.environ.get("HPC_DL4MIC_BENCH_NO_UP"):
        proc = subprocess.run(["bash", str(UP_SH)], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            sys.exit(f"{UP_SH} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    if not env_file.is_file():
        sys.exit(f"{env_file} not found: the local test cluster must be up "
                 f"(as root: bash {UP_SH})")
    env = _parse(env_file)
    try:
        socket.create_connection((env["SSH_HOST"], int(env["SSH_PORT"])), timeout=5).close()
    except (OSError, KeyError, ValueError) as exc:
        sys.exit(f"the local test cluster does not answer on its sshd ({exc}): start it "
                 f"(as root: bash {UP_SH})")
    return env
