"""GPU tier: runs where `nvidia-smi -L` lists a GPU (skipped elsewhere, e.g. in CI).

It needs apptainer on PATH and the offline Debian base SIF (`hpc-dl4mic base`): its path in
$HPC_DL4MIC_GPU_BASE, else the one the e2e tier caches in $HPC_DL4MIC_TEST_CACHE. Images
are built on this machine from it, offline (tests/gpu/device_run.sh sets all of this up on
a bare GPU machine)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def gpu_names() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in out.stdout.splitlines() if line.startswith("GPU ")]


@pytest.fixture(scope="session")
def gpu_machine() -> list[str]:
    names = gpu_names()
    if not names:
        pytest.skip("GPU tier: nvidia-smi finds no NVIDIA GPU here")
    if not shutil.which("apptainer"):
        pytest.skip("GPU tier: no apptainer on PATH")
    return names


@pytest.fixture(scope="session")
def gpu_base(gpu_machine) -> Path:
    env = os.environ.get("HPC_DL4MIC_GPU_BASE")
    if env:
        return Path(env)
    cache = Path(os.environ.get("HPC_DL4MIC_TEST_CACHE", "/var/tmp/hpc-dl4mic-test-cache"))
    found = sorted(cache.glob("debian-bookworm-base-*.sif"))
    if not found:
        pytest.skip("GPU tier: no base SIF: set HPC_DL4MIC_GPU_BASE (see `hpc-dl4mic base`)")
    return found[-1]
