"""End-to-end tier: a real single-node SLURM cluster + sshd + apptainer on 127.0.0.1.

The session fixture `cluster` runs tests/cluster/up.sh (idempotent: ~1 s when the cluster is
already up, about a minute on a fresh machine) and returns a ClusterInfo. Set-up needs root;
the tests themselves log in as the unprivileged test user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # clusterinfo must import under any --import-mode
    sys.path.insert(0, str(HERE))

from clusterinfo import ClusterInfo, parse_cluster_env  # noqa: E402

REPO = HERE.parent.parent
UP_SH = REPO / "tests" / "cluster" / "up.sh"
UP_TIMEOUT = 900


def cluster_base() -> Path:
    return Path(os.environ.get("HPC_DL4MIC_CLUSTER", "/tmp/hpc-dl4mic-cluster"))


@pytest.fixture(scope="session")
def cluster() -> ClusterInfo:
    if os.geteuid() != 0:
        pytest.skip("e2e tier: setting up the local test cluster (tests/cluster/up.sh) needs root")
    try:
        proc = subprocess.run(
            ["bash", str(UP_SH)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=UP_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        pytest.fail(f"{UP_SH} did not finish within {UP_TIMEOUT} s; last output:\n{out[-4000:]}",
                    pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"{UP_SH} exited {proc.returncode}; last output:\n{proc.stdout[-4000:]}",
                    pytrace=False)
    return parse_cluster_env(cluster_base() / "cluster.env")


TEST_IMAGE_CACHE = Path(os.environ.get("HPC_DL4MIC_TEST_CACHE", "/var/tmp/hpc-dl4mic-test-cache"))


def debian_base(suite: str) -> Path:
    """The small offline Debian base SIF of ``suite``, built once per machine and reused by
    content hash from a machine-local cache (HPC_DL4MIC_TEST_CACHE); readable by the
    cluster's test user."""
    from hpc_dl4mic.images.build import build_image, prepare_base_image
    from hpc_dl4mic.images.cache import ImageCache

    ca_dir = Path("/usr/local/share/ca-certificates")
    inputs = prepare_base_image(suite, ca_certs=ca_dir if any(ca_dir.glob("*.crt")) else None)
    TEST_IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    TEST_IMAGE_CACHE.chmod(0o755)
    result = build_image(inputs, ImageCache(TEST_IMAGE_CACHE),
                         progress=lambda line: print(line, file=sys.stderr, flush=True))
    return result.path


@pytest.fixture(scope="session")
def base_sif(cluster) -> Path:
    """The bookworm base (python 3.11)."""
    return debian_base("bookworm")


@pytest.fixture(scope="session")
def bullseye_base_sif(cluster) -> Path:
    """The bullseye base (python 3.9: the configs that ask for 3.9)."""
    return debian_base("bullseye")


CLUSTER_IMAGE_CACHE = Path("/var/tmp/hpc-dl4mic-e2e-cluster-cache")


@pytest.fixture(scope="session")
def cluster_profile(cluster, tmp_path_factory) -> Path:
    """A profiles file for the local cluster. Its image cache is owned by the cluster user
    and kept across runs (images are found again by key)."""
    import pwd
    import shutil

    CLUSTER_IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    user = pwd.getpwnam(cluster.user)
    shutil.chown(CLUSTER_IMAGE_CACHE, user.pw_uid, user.pw_gid)
    CLUSTER_IMAGE_CACHE.chmod(0o755)
    path = tmp_path_factory.mktemp("profiles") / "profiles.yaml"
    path.write_text(
        "profiles:\n  testcluster:\n"
        f"    host: {cluster.host}\n    port: {cluster.port}\n    user: {cluster.user}\n"
        f"    identity: {cluster.key}\n    known_hosts: {cluster.known_hosts}\n"
        f"    cache_dir: {CLUSTER_IMAGE_CACHE}\n    build: login\n"
        "    partition: gpu\n    gres: gpu:1\n    time: '00:30:00'\n")
    return path


@pytest.fixture(scope="module")
def state_env(tmp_path_factory) -> dict[str, str]:
    """The CLI's environment for one test module: its own XDG state, config and cache (so
    profiles, sessions and runs of one module never meet another's)."""
    home = tmp_path_factory.mktemp("xdg")
    return {**os.environ, "XDG_STATE_HOME": str(home / "state"),
            "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
            "PYTHONUNBUFFERED": "1"}
