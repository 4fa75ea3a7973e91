"""The build lock of a cache on a cluster (hpc_dl4mic/images/hostlock.py): the holder
script (quoted, ``bash -n`` clean, explicit modes), run for real by bash + flock on this
machine through LocalHost (waits with progress, a killed or interrupted client leaves no
stale lock), and the build flow's re-check after the wait (FakeHost)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fakehost import FakeHost
from test_build_flow import INPUTS, builds, host_with_apptainer

from hpc_dl4mic.images.build import build
from hpc_dl4mic.images.builders import make_builder
from hpc_dl4mic.images.cache import ImageCache, ImageRecord
from hpc_dl4mic.images.hostlock import HOLDER, HostLock, holder_argv
from hpc_dl4mic.remote.commands import remote_command
from hpc_dl4mic.remote.localhost import LocalHost

REPO = Path(__file__).resolve().parents[2]
needs_flock = pytest.mark.skipif(not (shutil.which("flock") and shutil.which("bash")),
                                 reason="needs bash and util-linux flock")
HOSTILE = "lock $(touch CANARY) `id` ';\n\"x\" *.lock"


def test_the_holder_script_is_bash_n_clean(tmp_path):
    script = tmp_path / "holder.sh"
    script.write_text(HOLDER)
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


def test_every_value_reaches_the_shell_quoted_as_one_word():
    argv = holder_argv(f"/srv/c/.tmp/{HOSTILE}", 0o660)
    assert argv[:3] == ["bash", "-c", HOLDER] and argv[3] == "hpc-dl4mic-lock"
    assert argv[4] == f"/srv/c/.tmp/{HOSTILE}"  # a positional argument, not in the script
    assert shlex.split(remote_command(argv)) == argv


@pytest.mark.parametrize("mode,umask", [(0o660, "0117"), (0o600, "0177")])
def test_the_lock_file_mode_is_explicit(mode, umask):
    assert holder_argv("/c/.tmp/x.lock", mode)[-1] == umask


@pytest.mark.parametrize("cache_mode,lock_mode", [(0o2775, 0o660), (0o755, 0o600),
                                                  (0o700, 0o600)])
def test_a_shared_cache_gets_a_group_lock_and_a_private_one_a_private_lock(cache_mode,
                                                                          lock_mode):
    host = FakeHost()
    host.makedirs("/c", cache_mode)
    cache = ImageCache("/c", host)
    assert cache.lock_mode() == lock_mode and not cache.lock_mode() & 0o007
    assert str(cache.lock_path("X", "a" * 64)) == "/c/.tmp/X-aaaaaaaaaaaaaaaa.lock"


# -- the real holder, on this machine ---------------------------------------------------

def lock(path: Path, said: list[str], mode: int = 0o660) -> HostLock:
    return HostLock(LocalHost(), str(path), mode=mode, what="X-aaaa", say=said.append,
                    interval=1.0)


@needs_flock
def test_a_second_holder_waits_with_progress_then_gets_the_lock(tmp_path):
    path = tmp_path / HOSTILE.replace("\n", " ").replace("/", "_")
    first_said: list[str] = []
    old = os.umask(0)  # the holder sets its own umask: the user's does not matter
    try:
        first = lock(path, first_said)
        assert not first.acquire().waited
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o660
    assert path.read_text().strip() == LocalHost().run(["id", "-un"]).stdout.strip()
    said: list[str] = []
    second = lock(path, said)
    releaser = threading.Timer(2.6, first.release)
    releaser.start()
    started = time.monotonic()
    state = second.acquire()
    waited = time.monotonic() - started
    releaser.join()
    assert 2.0 < waited < 8 and state.waited and state.holder == path.read_text().strip()
    assert said and all(line.startswith(f"waiting for {state.holder}'s build of X-aaaa "
                                        f"(lock {path}): ") for line in said)
    assert said[-1].endswith(" s") and len(said) >= 2  # one a second (interval 1 s)
    second.release()
    assert not path.exists() and not first_said  # the last holder removed the file
    assert not list(tmp_path.glob("CANARY")) and not Path("CANARY").exists()


@needs_flock
def test_a_killed_client_leaves_no_stale_lock(tmp_path):
    path = tmp_path / "x.lock"
    code = ("import os, sys; from hpc_dl4mic.images.hostlock import HostLock;"
            "from hpc_dl4mic.remote.localhost import LocalHost;"
            f"HostLock(LocalHost(), {str(path)!r}, mode=0o600, what='X', say=print).acquire();"
            "print('held', flush=True); os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "held" in proc.stdout and proc.returncode == -9, proc.stderr
    started = time.monotonic()
    with lock(path, [], mode=0o600):
        assert time.monotonic() - started < 6  # the orphaned holder died at its next write
    assert path.stat().st_mode & 0o777 == 0o600 if path.exists() else True


@needs_flock
def test_an_interrupt_while_waiting_stops_the_waiting_holder(tmp_path):
    path = tmp_path / "x.lock"
    first = lock(path, [])
    first.acquire()

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    waiter = HostLock(LocalHost(), str(path), mode=0o660, what="X", say=interrupt)
    with pytest.raises(KeyboardInterrupt):
        waiter.acquire()
    assert waiter.pid.isdigit() and not Path(f"/proc/{waiter.pid}").exists()
    first.release()
    started = time.monotonic()
    with lock(path, []):
        assert time.monotonic() - started < 3


@needs_flock
def test_a_waiter_whose_file_was_removed_locks_the_new_one(tmp_path):
    path = tmp_path / "x.lock"
    first = lock(path, [])
    first.acquire()
    said: list[str] = []
    second = lock(path, said)
    thread = threading.Thread(target=second.acquire)
    thread.start()
    time.sleep(1.5)  # second holds an fd on the file and waits
    first.release()  # removes the file: second must open the path again, not lock the old
    thread.join(timeout=10)
    assert second.locked and path.exists()
    third = lock(path, [])
    timer = threading.Timer(1.5, second.release)
    timer.start()
    assert third.acquire().waited  # the new file is the one second holds
    timer.join()
    third.release()


def test_an_unusable_lock_is_one_error_line():
    from hpc_dl4mic.errors import RemoteError

    host = FakeHost()
    host.on("bash", do=lambda argv, call: (3, "pid 9\nerror: cannot open /c/.tmp/x.lock\n",
                                           ""))
    with pytest.raises(RemoteError, match=r"^build lock /c/.tmp/x.lock on fake: cannot open "):
        HostLock(host, "/c/.tmp/x.lock", mode=0o600, what="X", say=print).acquire()


# -- the build flow -----------------------------------------------------------------------

def test_the_lock_is_taken_before_the_build_and_the_cache_is_checked_again_after_it():
    host = host_with_apptainer(0o2775)
    sif = "/c/X_DL4Mic-aaaaaaaaaaaaaaaa.sif"

    def another_user_builds_meanwhile(argv, call):
        assert argv[3:5] == ["hpc-dl4mic-lock", "/c/.tmp/X_DL4Mic-aaaaaaaaaaaaaaaa.lock"]
        assert argv[5] == "0117"  # 0660 in a shared cache
        host.add_file(sif, b"SIF-bytes", 0o664)
        record = ImageRecord("X_DL4Mic", "a" * 64, "0" * 64, 9, time.time())
        host.add_file(sif[:-4] + ".json", record.to_json(), 0o664)
        return "pid 77\nwaiting hpcuser2\nwaiting hpcuser2\nlocked\n"

    host.on("bash", do=another_user_builds_meanwhile)
    said: list[str] = []
    result = build(INPUTS, host, "/c", builder=make_builder("login", fakeroot=True),
                   progress=said.append)
    assert result.cached and str(result.path) == sif
    assert not builds(host) and not any(c[0] == "setsid" for c in host.commands())
    assert said[-1].startswith("X_DL4Mic-aaaaaaaaaaaaaaaa was built by hpcuser2 meanwhile")


@pytest.mark.parametrize("kind", ["login", "slurm"])
def test_both_cluster_builders_build_under_the_lock(kind, monkeypatch):
    host = host_with_apptainer(0o2775)
    order: list[str] = []
    host.on("bash", do=lambda argv, call: order.append("lock") or "pid 5\nlocked\n")
    if kind == "slurm":
        monkeypatch.setattr("hpc_dl4mic.images.builders.time.sleep", lambda _s: None)
        scheduler = host.fake_scheduler
        scheduler.states = ["COMPLETED"]

        def job(job_id, script):
            order.append("build")
            folder = script.split("\ncd ", 1)[1].split("\n", 1)[0]
            host.add_file(f"{shlex.split(folder)[0]}/image.sif", b"SIF-bytes")

        scheduler.on_submit = job
    else:
        host.handlers.insert(0, (("setsid",), lambda argv, call: order.append("build") or
                                 host.add_file(f"{call.cwd}/image.sif", b"SIF") or "ok\n"))
    result = build(INPUTS, host, "/c", builder=make_builder(kind, fakeroot=True))
    assert not result.cached and order == ["lock", "build"]
    record = json.loads(host.files["/c/X_DL4Mic-aaaaaaaaaaaaaaaa.json"].data)
    assert record["key"] == "a" * 64


@pytest.mark.parametrize("cache_mode", [0o2775, 0o755], ids=["shared", "private"])
def test_an_image_gets_the_shared_cache_folders_group(cache_mode):
    host = host_with_apptainer(cache_mode)
    build(INPUTS, host, "/c", builder=make_builder("login", fakeroot=True))
    chgrp = [c for c in host.commands() if c[0] == "chgrp"]
    if cache_mode & 0o020:
        (argv,) = chgrp
        assert argv[:3] == ["chgrp", "--reference=/c", "--"]
        assert argv[3].startswith("/c/.tmp/") and argv[3].endswith("/image.sif")
    else:
        assert not chgrp
