"""Faults and concurrency through real components: an sshd restarted under an open tunnel,
a session's job killed by SLURM, an SFTP download cut mid-file, an unreachable cluster,
two builds of one image into one cache and two submits at once.

The sshd faults use a private sshd (tests/e2e/ownsshd.py) on its own port: the shared
cluster sshd on 2222 is never stopped."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from ownsshd import OwnSshd, free_port
from seeddata import interactive_signals
from test_build_real import image_args as build_image_args
from test_submit_real import api, cli_argv, read_url, run_cli, submit_args

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIG_FILE_MB = 160
BLACKHOLE = "10.255.255.1"  # a private address nothing answers: packets go unanswered


@pytest.fixture(scope="module")
def own_sshd(cluster, tmp_path_factory):
    sshd = OwnSshd(cluster, tmp_path_factory.mktemp("own-sshd"))
    sshd.start()
    try:
        yield sshd
    finally:
        sshd.stop()


@pytest.fixture(scope="module")
def own_profile(own_sshd, cluster_profile, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("own-profile") / "profiles.yaml"
    path.write_text(own_sshd.profile_text(cluster_profile))
    return path


def start_submit(env, base_sif: Path, profile: Path) -> subprocess.Popen:
    return subprocess.Popen(cli_argv(*submit_args(base_sif, profile)), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, preexec_fn=interactive_signals)


def sessions(env, *extra: str) -> list[dict]:
    out = run_cli(env, "status", "--json", *extra)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def own_session(own_sshd, own_profile, base_sif, state_env):
    """A Jupyter session submitted through the private sshd: (submit process, URL, record)."""
    proc = start_submit(state_env, base_sif, own_profile)
    record: dict = {}
    try:
        url, _ = read_url(proc, timeout=900)
        record = sessions(state_env)[0]
        yield proc, url, record
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
        if record and own_sshd.pid is None:
            own_sshd.start()
        if record:
            run_cli(state_env, "cancel", record["id"])


def api_post(url: str, path: str, body: dict) -> dict:
    parsed = urlparse(url)
    token = parse_qs(parsed.query)["token"][0]
    request = urllib.request.Request(f"{parsed.scheme}://{parsed.netloc}{path}",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"token {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def api_put(url: str, path: str, body: dict) -> dict:
    parsed = urlparse(url)
    token = parse_qs(parsed.query)["token"][0]
    request = urllib.request.Request(f"{parsed.scheme}://{parsed.netloc}{path}",
                                     data=json.dumps(body).encode(), method="PUT",
                                     headers={"Authorization": f"token {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert lines and lines[-1].startswith("hpc-dl4mic: error: "), stderr
    return lines[-1]


# ------------------------------------------------------------------ (a) sshd restarted


def test_connect_after_an_sshd_restart_reaches_the_same_jupyter(own_session, own_sshd,
                                                               state_env):
    proc, url, record = own_session
    status = api(url, "/api/status")
    kernel = api_post(url, "/api/kernels", {"name": "python3"})
    kernels = sorted(k["id"] for k in api(url, "/api/kernels"))
    assert kernel["id"] in kernels

    own_sshd.stop()  # the daemon and every connection it served, the tunnel's included
    # the submitting command notices on its next check, says the job keeps running, exit 1
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "connection was lost" in err and f"hpc-dl4mic connect {record['id']}" in err, err
    assert "Traceback" not in err

    # while the login node is down: a one-line error, not a hang
    down = run_cli(state_env, "connect", record["id"], "--no-browser", timeout=60)
    assert down.returncode == 1 and "connection refused" in one_error_line(down.stderr)

    own_sshd.start()
    again = subprocess.Popen(cli_argv("connect", record["id"], "--no-browser"), env=state_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL, preexec_fn=interactive_signals)
    try:
        url2, _ = read_url(again, timeout=120)
        assert parse_qs(urlparse(url2).query)["token"] == parse_qs(urlparse(url).query)["token"]
        assert api(url2, "/api/status")["started"] == status["started"]  # the same server
        assert sorted(k["id"] for k in api(url2, "/api/kernels")) == kernels
    finally:
        again.send_signal(signal.SIGINT)
        again.communicate(timeout=60)
    assert again.returncode == 130


# ------------------------------------------------------------------ (c) fetch cut midway


FETCH_MEASURED = """\
import atexit, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(open("/proc/self/io").read()))
from hpc_dl4mic.cli.main import main
main(sys.argv[1:], prog_name="hpc-dl4mic")
"""


def written_bytes(io_file: Path) -> int:
    fields = dict(line.split(": ") for line in io_file.read_text().splitlines())
    return int(fields["wchar"])


def test_fetch_cut_mid_transfer_resumes_on_the_next_run(own_session, own_sshd, cluster,
                                                        state_env, tmp_path):
    _, _, record = own_session
    remote = f"{record['results_dir']}/{record['id']}/big.bin"
    cluster.ssh(f"head -c {BIG_FILE_MB}M /dev/urandom > {remote}", timeout=120)
    want = cluster.ssh(["sha256sum", remote], timeout=120).stdout.split()[0]
    size = BIG_FILE_MB << 20
    dest = tmp_path / "fetched"
    part = dest / ".big.bin.part"

    first = subprocess.Popen(cli_argv("fetch", record["id"], "--dest", str(dest)),
                             env=state_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (part.is_file() and part.stat().st_size > 0):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.005)
    own_sshd.cut_connections()  # mid-file: the SSH connection dies under the transfer
    _, err = first.communicate(timeout=60)
    assert first.returncode == 1, err
    assert "big.bin" in one_error_line(err)
    kept = part.stat().st_size
    assert 0 < kept < size and not (dest / "big.bin").exists()

    io_file = tmp_path / "io.txt"
    rerun = subprocess.run([sys.executable, "-c", FETCH_MEASURED, str(io_file), "fetch",
                            record["id"], "--dest", str(dest)], env=state_env,
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert rerun.returncode == 0, rerun.stderr
    digest = hashlib.sha256((dest / "big.bin").read_bytes()).hexdigest()
    assert digest == want and not part.exists()
    # it continued from the part: it wrote only what was missing (plus a little protocol)
    assert written_bytes(io_file) < size - kept + (4 << 20), (written_bytes(io_file), kept)


# ------------------------------------------------------------------ (b) killed by SLURM


def test_session_killed_by_slurm_shows_its_state_log_and_keeps_its_results(
        own_session, cluster, state_env, tmp_path):
    _, _, record = own_session
    url = None
    connect = subprocess.Popen(cli_argv("connect", record["id"], "--no-browser"), env=state_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, preexec_fn=interactive_signals)
    try:
        url, _ = read_url(connect, timeout=120)
        api_put(url, "/api/contents/notes.txt",
                {"type": "file", "format": "text", "content": "saved before the kill\n"})
    finally:
        if url is None:
            connect.kill()
    cluster.ssh(["scancel", record["job_id"]])
    # the attached command notices the end of the job, closes the tunnel and says so
    _, err = connect.communicate(timeout=60)
    assert "ended (CANCELLED)" in err and f"hpc-dl4mic fetch {record['id']}" in err, err
    assert connect.returncode != 0

    deadline = time.monotonic() + 60
    while (state := sessions(state_env, "--all", record["id"])[0]["state"]) != "CANCELLED":
        assert time.monotonic() < deadline, state
        time.sleep(1)
    assert record["id"] not in [s["id"] for s in sessions(state_env)]  # no longer active
    table = run_cli(state_env, "status", "--all")
    assert any(record["id"] in line and "CANCELLED" in line for line in table.stdout.splitlines())
    logs = run_cli(state_env, "logs", record["id"])
    assert logs.returncode == 0, logs.stderr
    assert "Jupyter is ready" in logs.stdout
    assert f"JOB {record['job_id']} ON {cluster.node} CANCELLED AT" in logs.stdout  # SLURM's word

    dest = tmp_path / "after-kill"
    fetched = run_cli(state_env, "fetch", record["id"], "--dest", str(dest), timeout=300)
    assert fetched.returncode == 0, fetched.stderr
    assert (dest / "notes.txt").read_text() == "saved before the kill\n"
    assert any(p.suffix == ".ipynb" for p in dest.iterdir())
    remote = f"{record['results_dir']}/{record['id']}"
    listing = cluster.ssh(f"cd {remote} && find . -type f -exec sha256sum {{}} +").stdout
    for line in listing.splitlines():
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == digest, name


# ------------------------------------------------------------------ (d) unreachable


@pytest.mark.parametrize("where", ["closed-port", "blackhole"])
def test_unreachable_cluster_is_a_one_line_error_within_the_connect_timeout(
        cluster, cluster_profile, state_env, tmp_path, where):
    timeout = 3
    host, port = ("127.0.0.1", free_port()) if where == "closed-port" else (BLACKHOLE, 22)
    text = cluster_profile.read_text().replace(f"host: {cluster.host}\n", f"host: {host}\n")
    text = text.replace(f"port: {cluster.port}\n", f"port: {port}\n")
    profile = tmp_path / "profiles.yaml"
    profile.write_text(text + f"    connect_timeout: {timeout}\n")
    started = time.monotonic()
    out = run_cli(state_env, "profile", "test", "testcluster", "--profile-file", str(profile),
                  timeout=60)
    elapsed = time.monotonic() - started
    assert out.returncode == 1, out.stderr
    line = one_error_line(out.stderr)
    assert f"{host}:{port}" in line
    if where == "closed-port":
        assert "connection refused" in line, line
    else:  # no answer at all, or (behind a proxy that accepts everything) no SSH banner,
        # or a proxy that accepts and closes at once
        assert ("timed out after 3 s" in line or "no SSH server answered within 3 s" in line
                or "closed before any SSH banner" in line or "cannot connect" in line), line
    assert elapsed < timeout + 5, elapsed  # + the interpreter's start


# ------------------------------------------------------------------ concurrency


def test_two_builds_of_one_image_into_one_cache_build_it_once(base_sif, tmp_path):
    cache = tmp_path / "shared-cache"
    argv = [sys.executable, "-m", "hpc_dl4mic.cli", "build",
            *build_image_args(base_sif, "--cache", str(cache), "--json")]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (_out, err) in zip(procs, outs):
        assert proc.returncode == 0, err
    results = [json.loads(out) for out, _ in outs]
    assert results[0]["path"] == results[1]["path"]
    assert sorted(r["cached"] for r in results) == [False, True]  # one built, one waited
    assert len(list(cache.glob("*.sif"))) == 1 and len(list(cache.glob("*.json"))) == 1
    assert list((cache / ".tmp").iterdir()) == []
    verify = subprocess.run([sys.executable, "-m", "hpc_dl4mic.cli", "cache", "verify",
                             "--cache", str(cache)], capture_output=True, text=True,
                            timeout=300, stdin=subprocess.DEVNULL)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_two_submits_at_once_get_two_sessions_that_both_answer(base_sif, cluster_profile,
                                                              tmp_path_factory):
    home = tmp_path_factory.mktemp("xdg-two")
    env = {**os.environ, "XDG_STATE_HOME": str(home / "state"),
           "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
           "PYTHONUNBUFFERED": "1"}
    procs = [start_submit(env, base_sif, cluster_profile) for _ in range(2)]
    try:
        urls = [read_url(p, timeout=900)[0] for p in procs]
        assert len({urlparse(u).port for u in urls}) == 2
        assert len({parse_qs(urlparse(u).query)["token"][0] for u in urls}) == 2
        for url in urls:
            assert api(url, "/api/status")["started"]
        listed = sessions(env)
        assert len({s["id"] for s in listed}) == 2 and len({s["job_id"] for s in listed}) == 2
        assert {s["state"] for s in listed} == {"RUNNING"}
        assert sorted(s["local_port"] for s in listed) == sorted(urlparse(u).port for u in urls)
        records = sorted((home / "state" / "hpc-dl4mic" / "sessions").glob("*.json"))
        assert [p.stem for p in records] == sorted(s["id"] for s in listed)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            p.communicate(timeout=60)
        for s in sessions(env):
            run_cli(env, "cancel", s["id"])
    assert sessions(env) == []
