"""Two distinct cluster users build the same image into one shared, group-writable
(setgid 2775) cache at the same time: the build lock on the cluster
(hpc_dl4mic/images/hostlock.py) lets exactly one apptainer build happen; the other user
waits, with progress, then uses that image, which it can read and run.

Both users log in through a private sshd (tests/e2e/ownsshd.py) that lets in the test user
and ``hpcuser2`` (tests/e2e/users.py: its own key, the cache's group, the apptainer shim);
the shared sshds are not touched. One tiny notebook image on the offline Debian base: a
build takes about a minute."""

from __future__ import annotations

import grp
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clitools import ca_args
from ownsshd import OwnSshd
from users import ClusterUser, ensure_user

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[1] / "data"
CONFIG = DATA / "mini_sweep" / "configuration.yaml"
NOTEBOOK = DATA / "mini_sweep.ipynb"
REQUIREMENTS = DATA / "requirements-none.txt"
SECOND_USER = "hpcuser2"


@pytest.fixture(scope="module")
def cache_group(cluster) -> str:
    return grp.getgrgid(cluster.shared_cache.stat().st_gid).gr_name


@pytest.fixture(scope="module")
def users(cluster, cache_group) -> tuple[ClusterUser, ClusterUser]:
    second = ensure_user(SECOND_USER, cluster, login=True, groups=(cache_group,),
                         apptainer=True)
    return ClusterUser(cluster.user, cluster.user_home, cluster.key), second


@pytest.fixture(scope="module")
def sshd(cluster, users, tmp_path_factory):
    own = OwnSshd(cluster, tmp_path_factory.mktemp("lock-sshd"),
                  allow_users=tuple(u.name for u in users))
    own.start()
    yield own
    own.stop()


@pytest.fixture
def shared_cache(cluster, cache_group):
    """A fresh cache folder as an admin makes one: group-writable, setgid."""
    path = cluster.shared_cache / f"lock-e2e-{os.getpid()}-{time.time_ns()}"
    subprocess.run(["install", "-d", "-m", "2775", "-g", cache_group, str(path)], check=True,
                   timeout=30)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def profile(tmp_path: Path, sshd: OwnSshd, user: ClusterUser, cache: Path) -> Path:
    path = tmp_path / f"profiles-{user.name}.yaml"
    path.write_text(
        "profiles:\n  testcluster:\n"
        f"    host: 127.0.0.1\n    port: {sshd.port}\n    user: {user.name}\n"
        f"    identity: {user.key}\n    known_hosts: {sshd.known_hosts}\n"
        f"    cache_dir: {cache}\n    build: login\n    partition: cpu\n"
        "    time: '00:20:00'\n")
    return path


def start_build(env, tmp_path: Path, profile_file: Path, build_on: str, base_sif: Path):
    argv = [sys.executable, "-m", "hpc_dl4mic.cli", "build", str(CONFIG), "--on",
            "testcluster", "--profile-file", str(profile_file), "--build-on", build_on,
            "--base", f"localimage:{base_sif}", "--notebook", str(NOTEBOOK),
            "--requirements", str(REQUIREMENTS), "-v", "--json",
            *ca_args()]
    out = open(tmp_path / f"{profile_file.stem}.out", "w+")  # files: no pipe can fill up
    err = open(tmp_path / f"{profile_file.stem}.err", "w+")
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                            text=True), out, err


def finish(started, timeout: float = 900) -> tuple[int, str, str]:
    proc, out, err = started
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    out.seek(0)
    err.seek(0)
    return proc.returncode, out.read(), err.read()


def as_user(user: str, *argv: str) -> str:
    done = subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout


def check_one_build(cache: Path, users, results, cache_group: str) -> None:
    """Both succeeded with the same image; exactly one built it, the other waited and used
    it; one image + record, no build folders; both users can read and run it."""
    for rc, _out, err in results:
        assert rc == 0, err[-3000:]
    found = [json.loads(out) for _rc, out, _err in results]
    assert found[0]["path"] == found[1]["path"] and found[0]["key"] == found[1]["key"]
    assert sorted(f["cached"] for f in found) == [False, True]
    builder = 0 if not found[0]["cached"] else 1
    waiter = 1 - builder
    built_lines = [line for _rc, _out, err in results for line in err.splitlines()
                   if line.startswith(("building ", "submitting a SLURM build job"))]
    assert len(built_lines) == 1, built_lines  # exactly one apptainer build
    wait_err = results[waiter][2]
    stem = Path(found[0]["path"]).stem
    lock = f"{cache}/.tmp/{stem}.lock"
    assert (f"waiting for {users[builder].name}'s build of {stem} (lock {lock}): "
            in wait_err), wait_err[-3000:]
    assert f"{stem} was built by {users[builder].name} meanwhile" in wait_err
    assert "waiting for" not in results[builder][2]
    entries = sorted(p.name for p in cache.iterdir())
    assert entries == [".tmp", f"{stem}.json", f"{stem}.sif"], entries
    assert not [p for p in (cache / ".tmp").iterdir() if p.is_dir() or p.suffix != ".lock"]
    sif, record_path = cache / f"{stem}.sif", cache / f"{stem}.json"
    record = json.loads(record_path.read_text())
    for path in (sif, record_path):
        info = path.stat()
        assert info.st_mode & 0o777 == 0o664 and grp.getgrgid(info.st_gid).gr_name == \
            cache_group, (path, oct(info.st_mode))
    for user in users:
        assert as_user(user.name, "sha256sum", str(sif)).split()[0] == record["sha256"]
        assert json.loads(as_user(user.name, "cat", str(record_path)))["key"] == record["key"]
    ran = as_user(users[waiter].name, "apptainer", "exec", str(sif), "python3", "-c",
                  "print(6 * 7)")
    assert ran.strip().endswith("42")


def test_two_users_build_one_image_on_the_login_node_once(users, sshd, shared_cache,
                                                          base_sif, state_env, tmp_path,
                                                          cache_group):
    started = [start_build(state_env, tmp_path, profile(tmp_path, sshd, u, shared_cache),
                           "login", base_sif) for u in users]
    check_one_build(shared_cache, users, [finish(s) for s in started], cache_group)


def test_a_slurm_build_job_and_a_login_node_build_of_one_image_build_once(
        users, sshd, shared_cache, base_sif, state_env, tmp_path, cache_group):
    started = [start_build(state_env, tmp_path, profile(tmp_path, sshd, u, shared_cache),
                           how, base_sif) for u, how in zip(users, ("slurm", "login"))]
    check_one_build(shared_cache, users, [finish(s) for s in started], cache_group)
