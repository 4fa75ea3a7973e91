"""`hpc-dl4mic submit` end to end: real sshd, SLURM, apptainer and Jupyter on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from seeddata import COLAB_NOTEBOOKS, interactive_signals

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SMALL_REQUIREMENTS = REPO / "tests" / "data" / "requirements-small.txt"
NOTEBOOK = COLAB_NOTEBOOKS / "StarDist_2D_ZeroCostDL4Mic.ipynb"
CA_CERTS = Path("/usr/local/share/ca-certificates")


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpc_dl4mic.cli", *args]


def submit_args(base_sif: Path, profile_file: Path, *extra: str) -> list[str]:
    args = ["submit", "StarDist_2D_DL4Mic", "--profile", "testcluster", "--profile-file",
            str(profile_file), "--base", f"localimage:{base_sif}", "--notebook", str(NOTEBOOK),
            "--requirements", str(SMALL_REQUIREMENTS), "--no-browser", *extra]
    if any(CA_CERTS.glob("*.crt")):
        args += ["--ca-certs", str(CA_CERTS)]
    return args


def read_url(proc: subprocess.Popen, timeout: float) -> tuple[str, list[str]]:
    """Wait for the URL line on stdout; collect stderr meanwhile."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            line = key.fileobj.readline()
            if not line:
                sel.unregister(key.fileobj)
                continue
            if key.data == "err":
                errors.append(line.rstrip())
            elif line.startswith("http://127.0.0.1:"):
                return line.strip(), errors
        if proc.poll() is not None and not sel.get_map():
            break
    proc.kill()
    raise AssertionError("no URL printed; stderr:\n" + "\n".join(errors[-40:]))


def api(url: str, path: str) -> object:
    parsed = urlparse(url)
    token = parse_qs(parsed.query)["token"][0]
    request = urllib.request.Request(f"{parsed.scheme}://{parsed.netloc}{path}",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def port_open(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=2):
            return True
    except OSError:
        return False


def stop(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def run_cli(env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cli_argv(*args), env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_submit_tunnel_connect_logs_fetch_cancel(cluster, base_sif, cluster_profile, state_env,
                                                 tmp_path):
    upload = tmp_path / "my-images"
    (upload / "sub").mkdir(parents=True)
    (upload / "sub" / "cells.txt").write_text("nuclei\n")
    data_dir = f"{cluster.user_home}/e2e-data-{os.getpid()}"
    proc = subprocess.Popen(cli_argv(*submit_args(base_sif, cluster_profile, "--upload",
                                                  str(upload), "--data", data_dir)),
                            env=state_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL,
                            preexec_fn=interactive_signals)
    url, progress = read_url(proc, timeout=900)
    assert any("uploaded 1 changed file(s)" in line for line in progress)
    # uploads land in DATA/<folder name>/, and the message says where the notebook sees them
    assert cluster.ssh(["cat", f"{data_dir}/my-images/sub/cells.txt"]).stdout == "nuclei\n"
    assert any("/data/my-images" in line for line in progress)
    assert any("submitted job" in line for line in progress)
    assert any("running on" in line for line in progress)
    token = parse_qs(urlparse(url).query)["token"][0]
    assert len(token) >= 32  # >= 128 bits of hex

    # the Jupyter REST API through our tunnel: the converted notebook is in the session folder
    contents = api(url, "/api/contents")
    names = [item["name"] for item in contents["content"]]
    assert any(name.endswith(".ipynb") for name in names), names
    # the data is visible in Jupyter's file browser through the session's `data` link
    assert "data" in names, names
    data_listing = api(url, "/api/contents/data/my-images/sub")
    assert [item["name"] for item in data_listing["content"]] == ["cells.txt"]

    status = json.loads(run_cli(state_env, "status", "--json").stdout)
    assert len(status) == 1 and status[0]["state"] == "RUNNING"
    session = status[0]
    job_id = session["job_id"]

    # the token is never in any process's argv on the node, and its files are private
    ps = cluster.ssh(["ps", "-eo", "args"]).stdout
    assert token not in ps
    modes = cluster.ssh(shlex.join(["stat", "-c", "%a %n", session["session_dir"],
                                    session["session_dir"] + "/connection.json"])).stdout
    assert modes.splitlines()[0].startswith("700 ") and modes.splitlines()[1].startswith("600 ")
    # compute nodes are offline unless the profile says otherwise: the notebooks know it
    script = cluster.ssh(["cat", session["session_dir"] + "/job.sbatch"]).stdout
    assert "export APPTAINERENV_HPC_DL4MIC_OFFLINE=1" in script

    # Ctrl-C without a TTY keeps the job; the tunnel closes
    code, err = stop(proc, signal.SIGINT)
    assert code == 130, err
    assert "keeps running" in err
    assert not port_open(url)
    assert "RUNNING" in cluster.ssh(["squeue", "-h", "-j", job_id, "-o", "%T"]).stdout

    # connect re-opens the tunnel to the same Jupyter
    # connect re-opens it, here through the system's ssh -L
    again = subprocess.Popen(cli_argv("connect", session["id"], "--no-browser", "--tunnel",
                                      "openssh"), env=state_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL)
    url2, _ = read_url(again, timeout=120)
    assert parse_qs(urlparse(url2).query)["token"][0] == token
    assert api(url2, "/api/status")["started"]
    code, _ = stop(again, signal.SIGTERM)
    assert code == 130

    logs = run_cli(state_env, "logs", session["id"])
    assert logs.returncode == 0 and "Jupyter is ready" in logs.stdout

    dest = tmp_path / "fetched"
    fetched = run_cli(state_env, "fetch", session["id"], "--dest", str(dest))
    assert fetched.returncode == 0, fetched.stderr
    assert any(p.suffix == ".ipynb" for p in dest.iterdir())
    assert not (dest / "data").exists()  # the link to the data is not followed back
    notebook = next(p for p in dest.iterdir() if p.suffix == ".ipynb")
    remote_mtime = cluster.ssh(["stat", "-c", "%Y", f"{session['results_dir']}/{session['id']}/"
                                                    f"{notebook.name}"]).stdout.strip()
    assert int(notebook.stat().st_mtime) == int(remote_mtime)  # fetch keeps modification times
    again_fetch = run_cli(state_env, "fetch", session["id"], "--dest", str(dest))
    assert "0 file(s) fetched" in again_fetch.stderr  # unchanged files are skipped

    cancelled = run_cli(state_env, "cancel", session["id"])
    assert cancelled.returncode == 0, cancelled.stderr
    assert "CANCELLED" in cancelled.stdout or "COMPLETED" in cancelled.stdout
    assert run_cli(state_env, "status", "--json").stdout.strip() == "[]"


def test_bad_data_and_results_folders_are_refused_before_anything_runs(cluster, cluster_profile,
                                                                      state_env, base_sif):
    before = json.loads(run_cli(state_env, "status", "--json", "--all").stdout)
    for option, path, problem in (("--data", "/etc/hostname", "not a folder"),
                                  ("--results", "/root/hpc-dl4mic-results", "cannot be created"),
                                  ("--results", "/usr/share", "not writable")):
        out = subprocess.run(cli_argv(*submit_args(base_sif, cluster_profile, option, path)),
                             env=state_env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{option} {path}: {problem}" in lines[0], out.stderr
    assert json.loads(run_cli(state_env, "status", "--json", "--all").stdout) == before


def test_job_failing_at_start_is_an_error_with_the_log_tail(cluster, base_sif, cluster_profile,
                                                            state_env, tmp_path):
    broken = tmp_path / "profiles.yaml"
    broken.write_text(cluster_profile.read_text() + "    modules: [no-such-module/9.9]\n")
    out = subprocess.run(cli_argv(*submit_args(base_sif, broken, "--timeout", "120")),
                         env=state_env, capture_output=True, text=True, timeout=900,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 1, out.stderr
    assert "before Jupyter was ready" in out.stderr
    assert "module" in out.stderr  # the job log's tail says what went wrong
    assert "Traceback" not in out.stderr


def test_unknown_host_key_is_refused_with_its_fingerprint(cluster, cluster_profile, state_env,
                                                          tmp_path, base_sif):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    profile = tmp_path / "profiles.yaml"
    profile.write_text(cluster_profile.read_text().replace(str(cluster.known_hosts), str(empty)))
    out = subprocess.run(cli_argv(*submit_args(base_sif, profile)), env=state_env,
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert out.returncode == 1
    assert "SHA256:" in out.stderr and "--accept-new-host-key" in out.stderr
    assert empty.read_text() == ""


def test_local_mode_runs_the_same_job_script_without_slurm(base_sif, state_env, tmp_path):
    data, results = tmp_path / "data", tmp_path / "results"
    args = ["submit", "StarDist_2D_DL4Mic", "--local", "--base", f"localimage:{base_sif}",
            "--notebook", str(NOTEBOOK), "--requirements", str(SMALL_REQUIREMENTS),
            "--no-browser", "--data", str(data), "--results", str(results)]
    if any(CA_CERTS.glob("*.crt")):
        args += ["--ca-certs", str(CA_CERTS)]
    proc = subprocess.Popen(cli_argv(*args), env=state_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            preexec_fn=interactive_signals)
    url, progress = read_url(proc, timeout=900)
    assert any("submitted job local-" in line for line in progress)
    contents = api(url, "/api/contents")
    assert any(item["name"].endswith(".ipynb") for item in contents["content"])
    code, err = stop(proc, signal.SIGINT)
    assert code == 130 and "keeps running" in err
    assert port_open(url)  # the local job outlives the command, like a batch job
    session = json.loads(run_cli(state_env, "status", "--json").stdout)
    local = [s for s in session if s["profile"] == "local"]
    assert len(local) == 1 and local[0]["state"] == "RUNNING"
    assert re.fullmatch(r"local-\d+-\d+", local[0]["job_id"])  # pid and its start time
    logs = run_cli(state_env, "logs", local[0]["id"])
    assert logs.returncode == 0 and "Jupyter is ready" in logs.stdout, logs.stderr
    cancelled = run_cli(state_env, "cancel", local[0]["id"])
    assert "CANCELLED" in cancelled.stdout, cancelled.stderr
    deadline = time.monotonic() + 30
    while port_open(url) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not port_open(url)
    notebooks = list((results / local[0]["id"]).glob("*.ipynb"))
    assert notebooks, "the interactive notebook is copied into the session's results folder"


def test_local_upload_then_logs_and_fetch(base_sif, state_env, tmp_path):
    """`submit --local --upload DIR` copies DIR into DATA/<name>; `logs` and `fetch` work on
    the --local session (through this machine as the host)."""
    data, results = tmp_path / "data", tmp_path / "results"
    upload = tmp_path / "my-images"
    (upload / "sub").mkdir(parents=True)
    (upload / "sub" / "cells.txt").write_text("nuclei\n")
    args = ["submit", "StarDist_2D_DL4Mic", "--local", "--base", f"localimage:{base_sif}",
            "--notebook", str(NOTEBOOK), "--requirements", str(SMALL_REQUIREMENTS),
            "--no-browser", "--data", str(data), "--results", str(results), "--upload",
            str(upload)]
    if any(CA_CERTS.glob("*.crt")):
        args += ["--ca-certs", str(CA_CERTS)]
    proc = subprocess.Popen(cli_argv(*args), env=state_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            preexec_fn=interactive_signals)
    url, progress = read_url(proc, timeout=900)
    assert any("uploaded 1 changed file(s)" in line for line in progress), progress
    assert (data / "my-images" / "sub" / "cells.txt").read_text() == "nuclei\n"
    listing = api(url, "/api/contents/data/my-images/sub")
    assert [item["name"] for item in listing["content"]] == ["cells.txt"]
    code, err = stop(proc, signal.SIGINT)
    assert code == 130 and "keeps running" in err
    sessions = json.loads(run_cli(state_env, "status", "--json").stdout)
    session = next(s for s in sessions if s["profile"] == "local")
    try:
        logs = run_cli(state_env, "logs", session["id"])
        assert logs.returncode == 0 and "Jupyter is ready" in logs.stdout, logs.stderr
        dest = tmp_path / "fetched"
        fetched = run_cli(state_env, "fetch", session["id"], "--dest", str(dest))
        assert fetched.returncode == 0, fetched.stderr
        notebooks = [p for p in dest.iterdir() if p.suffix == ".ipynb"]
        assert notebooks and "fetched" in fetched.stderr
        assert not (dest / "data").exists()  # the link to the data is left out
        source = results / session["id"] / notebooks[0].name
        assert int(notebooks[0].stat().st_mtime) == int(source.stat().st_mtime)
        again = run_cli(state_env, "fetch", session["id"], "--dest", str(dest))
        assert "0 file(s) fetched" in again.stderr
    finally:
        cancelled = run_cli(state_env, "cancel", session["id"])
    assert "CANCELLED" in cancelled.stdout, cancelled.stderr
