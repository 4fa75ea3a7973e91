"""On a machine with an NVIDIA GPU: an image built by hpc-dl4mic (offline, from the Debian
base) runs a ZeroCostDL4Mic-layout notebook that computes on the GPU through
`hpc-dl4mic batch --local`; the result matches the CPU's and lands in the results folder;
`check-gpu --local` passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

DATA = Path(__file__).resolve().parents[1] / "data"
CONFIG = DATA / "gpu_saxpy" / "configuration.yaml"
NOTEBOOK = DATA / "gpu_saxpy.ipynb"
NONE = DATA / "requirements-none.txt"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("gpu-xdg")
    return {**os.environ, "XDG_STATE_HOME": str(home / "state"),
            "XDG_CACHE_HOME": str(home / "cache"), "PYTHONUNBUFFERED": "1",
            "HPC_DL4MIC_CACHE": os.environ.get("HPC_DL4MIC_GPU_IMAGES", str(home / "images"))}


def cli(env, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "hpc_dl4mic.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    print(proc.stderr[-3000:], file=sys.stderr)
    return proc


def image(base: Path) -> list[str]:
    return ["--notebook", str(NOTEBOOK), "--requirements", str(NONE),
            "--base", f"localimage:{base}"]


def test_check_gpu_local_passes(gpu_machine, gpu_base, env):
    out = cli(env, "check-gpu", str(CONFIG), "--local", *image(gpu_base), "--json")
    result = json.loads(out.stdout)
    print(json.dumps(result["checks"], indent=1))
    checks = {c["what"]: c for c in result["checks"]}
    assert out.returncode == 0 and result["ok"], result["checks"]
    assert checks["computation"]["status"] == "ok" and checks["driver"]["status"] == "ok"
    assert "NVIDIA" in checks["nvidia-smi"]["detail"]


def test_a_notebook_computes_on_the_gpu_through_batch_local(gpu_machine, gpu_base, env,
                                                             tmp_path):
    sweep = tmp_path / "sizes.yaml"
    sweep.write_text("grid:\n  n_elements: [1000, 1000000]\n  scale: [0.5, 3.0]\n")
    out = cli(env, "batch", str(CONFIG), "--local", *image(gpu_base), "--sweep", str(sweep))
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 600
    while True:
        tasks = json.loads(cli(env, "batch", "status", run_id, "--json").stdout)
        if all(t["state"] not in ("pending", "running") for t in tasks):
            break
        assert time.monotonic() < deadline, tasks
        time.sleep(2)
    assert [t["state"] for t in tasks] == ["completed"] * 4, tasks
    dest = tmp_path / "fetched"
    assert cli(env, "batch", "fetch", run_id, "--dest", str(dest)).returncode == 0
    for t in tasks:
        result = json.loads((dest / "tasks" / str(t["index"]) / "results" /
                             "gpu_result.json").read_text())
        assert result["ok"] and result["mismatches"] == 0 and "NVIDIA" in result["device"]
        assert result["n_elements"] == t["params"]["n_elements"]
        assert result["scale"] == t["params"]["scale"]
        print(f"task {t['index']}: {result['n_elements']} floats on {result['device']} in "
              f"{result['seconds'] * 1000:.2f} ms (x{result['scale']})")
