"""Where a session's Jupyter token may be, after a real submit on the local cluster: in no
process's argv, not in the job script or log, nowhere on the laptop side but the files
meant for it, and in no file that another user of the cluster can read.

The node is this machine, so the test (root) reads /proc and the cluster's files directly;
a second unprivileged user (``hpcuser2``) tries to read the session's files itself."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from seeddata import interactive_signals
from test_submit_real import api, cli_argv, read_url, run_cli, submit_args
from users import ensure_user

pytestmark = pytest.mark.e2e

OTHER_USER = "hpcuser2"


@pytest.fixture(scope="module")
def other_user(cluster) -> str:
    """A second unprivileged user of the cluster (created once, kept)."""
    return ensure_user(OTHER_USER).name


@pytest.fixture(scope="module")
def state_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("xdg")
    return {**os.environ, "XDG_STATE_HOME": str(home / "state"),
            "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"),
            "PYTHONUNBUFFERED": "1", "HPC_DL4MIC_TEST_XDG": str(home)}


@pytest.fixture(scope="module")
def work_dir(cluster) -> Path:
    """A work folder of the tool's own making (data, results, sessions under it)."""
    path = cluster.user_home / f"secrets-e2e-{os.getpid()}-{time.time_ns()}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def session(cluster, base_sif, cluster_profile, state_env, work_dir, tmp_path_factory):
    """A running Jupyter session: (URL, token, status record); cancelled at the end."""
    profile = tmp_path_factory.mktemp("secret-profile") / "profiles.yaml"
    profile.write_text(cluster_profile.read_text() + f"    work_dir: {work_dir}\n")
    proc = subprocess.Popen(cli_argv(*submit_args(base_sif, profile)), env=state_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, preexec_fn=interactive_signals)
    record = None
    try:
        url, _ = read_url(proc, timeout=900)
        token = parse_qs(urlparse(url).query)["token"][0]
        api(url, "/api/kernels")  # Jupyter has answered through the tunnel
        record = json.loads(run_cli(state_env, "status", "--json").stdout)[0]
        yield url, token, record, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)
        if record is not None:
            run_cli(state_env, "cancel", record["id"])


def files_under(*roots: Path) -> list[Path]:
    out = []
    for root in roots:
        for folder, _, names in os.walk(root):
            out.extend(Path(folder) / n for n in names)
    return sorted(p for p in set(out) if not p.is_symlink() and p.is_file())


def holds(path: Path, token: str) -> bool:
    try:
        return token.encode() in path.read_bytes()
    except OSError:
        return False


def readable_by(user: str, paths: list) -> list[str]:
    """Which of ``paths`` ``user`` can read (one runuser call)."""
    out = subprocess.run(["runuser", "-u", user, "--", "sh", "-c",
                          'for f; do cat "$f" >/dev/null 2>&1 && echo "$f"; done', "sh",
                          "/etc/hostname", *map(str, paths)],
                         capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    assert lines[:1] == ["/etc/hostname"], out  # the probe itself works
    return lines[1:]


def test_the_token_is_in_no_process_argv_and_its_environment_is_private(session, other_user):
    _, token, _, _ = session
    in_env = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        assert token.encode() not in argv, f"{proc.name}: {argv[:300]!r}"
        try:
            if token.encode() in (proc / "environ").read_bytes():
                in_env.append(proc)
        except OSError:
            continue
    assert in_env, "the job hands the token to Jupyter through the environment"
    # ... which only its owner (and root) can read
    assert readable_by(other_user, [p / "environ" for p in in_env]) == []


def test_the_token_is_not_in_the_job_script_nor_the_job_log(session):
    _, token, record, _ = session
    script = Path(record["session_dir"]) / "job.sbatch"
    log = Path(record["session_dir"]) / "job.log"
    assert script.is_file() and log.is_file()
    assert not holds(script, token) and not holds(log, token)
    assert "token=..." in log.read_text() or "token=" not in log.read_text()


def test_on_the_laptop_only_private_files_may_hold_the_token(session, state_env):
    _, token, record, _ = session
    laptop = files_under(Path(state_env["HPC_DL4MIC_TEST_XDG"]))
    assert any(p.name == f"{record['id']}.json" for p in laptop)
    for path in laptop:
        if holds(path, token):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent


def test_no_file_holding_the_token_is_readable_by_another_user(session, other_user, work_dir):
    _, token, record, _ = session
    files = files_under(work_dir, Path(record["session_dir"]), Path(record["results_dir"]))
    secret = [p for p in files if holds(p, token)]
    assert any(p.name == "connection.json" for p in secret), secret
    assert any(p.name.startswith("jpserver-") for p in secret), secret  # Jupyter's own
    readable = readable_by(other_user, files)
    assert not set(readable) & {str(p) for p in secret}, readable
    assert readable == []  # nothing of the session is readable by them, secret or not
    listing = subprocess.run(["runuser", "-u", other_user, "--", "ls", record["session_dir"]],
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode != 0 and "Permission denied" in listing.stderr


def test_the_tools_remote_folders_are_0700_and_its_secret_files_0600(session, work_dir):
    _, token, record, _ = session
    session_dir = Path(record["session_dir"])
    work_results = Path(record["results_dir"]) / record["id"]
    for folder in (work_dir, work_dir / "sessions", session_dir, session_dir / "runtime",
                   Path(record["results_dir"]), Path(record["data_dir"]), work_results):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for path in files_under(session_dir, work_results):
        mode = stat.S_IMODE(path.stat().st_mode)
        if holds(path, token):
            assert mode == 0o600, (path, oct(mode))
        assert not mode & 0o007, (path, oct(mode))  # never world-readable or writable
    assert stat.S_IMODE((session_dir / "connection.json").stat().st_mode) == 0o600
