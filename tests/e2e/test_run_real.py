"""`hpc-dl4mic run` (a plain command in the image as a SLURM job) and extra forwarded ports,
end to end on the local cluster: real sshd, SLURM, apptainer."""

from __future__ import annotations

import json
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from seeddata import COLAB_NOTEBOOKS, interactive_signals

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
CONFIG = DATA / "mini_sweep" / "configuration.yaml"
SMALL_REQUIREMENTS = DATA / "requirements-small.txt"
CA_CERTS = Path("/usr/local/share/ca-certificates")
SCRIPT = ("import os, sys; open('/results/model.txt', 'w').write(os.getcwd()); "
          "print('training', sys.argv[1]); sys.exit(4)")


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpc_dl4mic.cli", *args]


def cli(env, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cli_argv(*args), env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def image_args(base_sif: Path, notebook: Path = DATA / "mini_sweep.ipynb") -> list[str]:
    args = ["--notebook", str(notebook), "--requirements", str(SMALL_REQUIREMENTS),
            "--base", f"localimage:{base_sif}"]
    return args + (["--ca-certs", str(CA_CERTS)] if any(CA_CERTS.glob("*.crt")) else [])


@pytest.mark.parametrize("where", ["cluster", "local"])
def test_run_reports_the_exit_code_and_the_log_and_fetches_the_results(
        where, cluster, base_sif, cluster_profile, state_env, tmp_path):
    place = (["--profile", "testcluster", "--profile-file", str(cluster_profile)]
             if where == "cluster" else ["--local"])
    out = cli(state_env, "run", str(CONFIG), *place, *image_args(base_sif), "--",
              "python3", "-c", SCRIPT, "epoch-1")
    assert out.returncode == 1, out.stderr
    assert "training epoch-1" in out.stdout  # the job log, followed
    assert "the command exited with code 4" in out.stderr
    run_id = re.search(r"\(run (\S+)\)", out.stderr).group(1)
    logs = cli(state_env, "logs", run_id)
    assert "the command ended with exit code 4" in logs.stdout
    dest = tmp_path / "fetched"
    fetched = cli(state_env, "fetch", run_id, "--dest", str(dest))
    assert fetched.returncode == 0, fetched.stderr
    assert (dest / "model.txt").read_text() == "/results"
    connect = cli(state_env, "connect", run_id)
    assert connect.returncode == 2 and "is a command run" in connect.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_extra_port_of_the_job_answers_through_the_tunnel(cluster, base_sif, cluster_profile,
                                                             state_env, tmp_path):
    port = free_port()
    argv = cli_argv("submit", "StarDist_2D_DL4Mic", "--profile", "testcluster",
                    "--profile-file", str(cluster_profile),
                    *image_args(base_sif, COLAB_NOTEBOOKS / "StarDist_2D_ZeroCostDL4Mic.ipynb"),
                    "--no-browser", "--cancel-on-exit", "--forward", str(port))
    proc = subprocess.Popen(argv, env=state_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            preexec_fn=interactive_signals)
    server = None
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        lines: list[str] = []
        url = None
        deadline = time.monotonic() + 900
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            for key, _ in sel.select(timeout=1):
                line = key.fileobj.readline()
                if key.data == "out" and line.startswith("http://127.0.0.1:"):
                    url = line.strip()
                elif line:
                    lines.append(line.rstrip())
        assert url, "\n".join(lines[-30:])
        extra = next(line for line in lines if f"port {port} of the job:" in line)
        local = extra.rsplit(" ", 1)[1]
        job_id = next(m.group(1) for line in lines
                      if (m := re.search(r"submitted job (\d+)", line)))
        cluster.ssh("mkdir -p www && echo 'from the job' > www/hello.txt")
        # a small HTTP server as a step of the running job (on its node)
        server = subprocess.Popen(cluster.ssh_argv(
            f"srun --jobid={job_id} --overlap -n1 python3 -m http.server {port} "
            f"--bind 0.0.0.0 --directory www </dev/null"), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{local}hello.txt", timeout=5) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert body == "from the job\n"
    finally:
        if server is not None:
            server.terminate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert "cancelled job" in err


def test_check_gpu_on_fake_gpus_reports_no_nvidia_driver(cluster, base_sif, cluster_profile,
                                                          state_env):
    place = ["--profile", "testcluster", "--profile-file", str(cluster_profile)]
    out = cli(state_env, "check-gpu", str(CONFIG), *place, *image_args(base_sif), "--json")
    assert out.returncode == 1, out.stderr
    result = json.loads(out.stdout)
    checks = {c["what"]: c for c in result["checks"]}
    assert checks["allocation"]["status"] == "ok"  # the fake gres gave CUDA_VISIBLE_DEVICES
    assert checks["driver"]["status"] == "FAIL"
    assert "no NVIDIA driver" in checks["driver"]["detail"]
    assert result["report"]["env"]["SLURM_JOB_ID"]
    table = cli(state_env, "check-gpu", str(CONFIG), *place, *image_args(base_sif))
    assert "driver" in table.stdout and "FAIL" in table.stdout
    before = cli(state_env, "batch", "list", "--json").stdout
    refused = cli(state_env, "batch", str(CONFIG), *place, *image_args(base_sif),
                  "--check-gpu", "-p", "number_of_epochs", "2")
    assert refused.returncode == 1 and "GPU check failed (nvidia-smi)" in refused.stderr
    assert "nothing was submitted" in refused.stderr
    assert cli(state_env, "batch", "list", "--json").stdout == before
