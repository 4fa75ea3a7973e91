"""Stopping a remote build on Ctrl-C/SIGTERM: the kill command, and what build_for_profile
runs on the cluster when interrupted (login node: kill the process group; SLURM: scancel)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from fakehost import FakeHost

from hpc_dl4mic.catalogue.config import Base
from hpc_dl4mic.errors import Interrupted
from hpc_dl4mic.images.build import BuildInputs, build_for_profile
from hpc_dl4mic.images.builders import (
    BUILD_PID_FILE,
    KEEPALIVE,
    in_own_process_group,
    make_builder,
    stop_group_argv,
)
from hpc_dl4mic.jobs.resources import JobResources
from hpc_dl4mic.remote.profiles import Profile


def _live(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _start_group(tmp_path: Path, script: str) -> tuple[subprocess.Popen, Path, int]:
    pid_file = tmp_path / "a folder; with $(odd) chars" / BUILD_PID_FILE
    pid_file.parent.mkdir()
    proc = subprocess.Popen(in_own_process_group(["sh", "-c", script], str(pid_file)))
    deadline = time.monotonic() + 5
    while not (pid_file.is_file() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc, pid_file, int(pid_file.read_text())


def test_build_runs_as_leader_of_its_own_group_and_keeps_its_exit_status(tmp_path):
    argv = in_own_process_group(["apptainer", "build", "image.sif", "x.def"], "/r/tmp/build.pid")
    assert argv[:2] == ["setsid", "-w"] and argv[-4:] == ["apptainer", "build", "image.sif",
                                                          "x.def"]
    assert "/r/tmp/build.pid" in argv  # an argument, never spliced into the script
    proc, pid_file, pgid = _start_group(tmp_path, "exit 7")
    assert proc.wait(5) == 7
    assert pgid != 0


def test_stop_command_kills_the_whole_group_and_prints_it(tmp_path):
    proc, pid_file, pgid = _start_group(tmp_path, "sleep 60 & sleep 60")
    assert len(_live(pgid)) >= 2
    out = subprocess.run(stop_group_argv(str(pid_file)), capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == str(pgid)
    proc.wait(5)
    assert _live(pgid) == []


def test_stop_command_kills_a_group_that_ignores_term_after_the_grace(tmp_path):
    proc, pid_file, pgid = _start_group(tmp_path, "trap '' TERM; sleep 60")
    started = time.monotonic()
    subprocess.run(stop_group_argv(str(pid_file), grace=1), timeout=30, check=True)
    assert time.monotonic() - started < 10
    proc.wait(5)
    assert _live(pgid) == []


def _pids_running(command: str) -> list[int]:
    """Live processes whose argv is ``command`` split at spaces."""
    argv = command.encode().replace(b" ", b"\0") + b"\0"
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == argv and pid_alive(int(cmdline.parent.name)):
                pids.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue
    return pids


def pid_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_a_build_whose_client_is_gone_stops_itself(tmp_path):
    # the build prints nothing (mksquashfs); its client dies, so the pipe it reads breaks
    pid_file = tmp_path / BUILD_PID_FILE
    marker = f"sleep 61.{os.getpid()}"
    proc = subprocess.Popen(
        in_own_process_group(["sh", "-c", f"{marker} & {marker}"], str(pid_file),
                             keepalive=0.2),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout.readline().decode().rstrip("\n") == KEEPALIVE
    assert len(_pids_running(marker)) == 2
    proc.stdout.close()  # the client is gone
    deadline = time.monotonic() + 5
    while _pids_running(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pids_running(marker) == []
    assert proc.wait(5) != 0  # the keep-alive itself goes with the KILL, 10 s later


def test_keepalive_lines_come_while_a_build_is_silent_and_the_status_passes(tmp_path):
    out = subprocess.run(in_own_process_group(["sh", "-c", "echo step; sleep 1; exit 3"],
                                              str(tmp_path / BUILD_PID_FILE), keepalive=0.2),
                         capture_output=True, text=True, timeout=30)
    lines = out.stdout.splitlines()
    assert out.returncode == 3 and lines[0] == "step"
    assert set(lines[1:]) == {KEEPALIVE} and len(lines) >= 3


def test_the_login_builder_drops_keepalive_lines_from_progress_and_log():
    host = FakeHost(display="fake")
    host.on("setsid", do=lambda argv, call: (2, f"step 1\n{KEEPALIVE}\nFATAL: no\n", ""))
    said: list[str] = []
    outcome = make_builder("login", fakeroot=False).run(
        host, INPUTS, "/c/.tmp/b", ["apptainer", "build", "image.sif", "X_DL4Mic.def"],
        say=said.append, notice=said.append, timeout=None)
    assert not outcome.ok and KEEPALIVE not in outcome.log and "FATAL: no" in outcome.log
    assert KEEPALIVE not in said and "step 1" in said


def test_stop_command_without_a_pid_file_does_nothing(tmp_path):
    out = subprocess.run(stop_group_argv(str(tmp_path / "none.pid")), capture_output=True,
                         text=True, timeout=30)
    assert (out.returncode, out.stdout) == (0, "")


PROFILE = Profile(name="t", host="h", cache_dir="/c",
                  resources=JobResources(partition="cpu", gres="gpu:1"))
INPUTS = BuildInputs("X_DL4Mic", "Bootstrap: scratch\n", {"requirements.txt": b"six\n"},
                     Base("debootstrap", "bookworm"), "a" * 64)


def cluster(*, stream_raises: BaseException | None = None,
            job_states: list | None = None) -> FakeHost:
    """A FakeHost as build_for_profile sees a cluster: a login-node build that raises
    ``stream_raises``, a scheduler following ``job_states``, a stop command that reports
    process group 777."""
    host = FakeHost(display="fake")

    def build(argv, call):
        raise stream_raises

    host.on("setsid", do=build)
    host.on("sh", "-c", do=lambda argv, call: "777\n")
    if job_states is not None:
        host.fake_scheduler.states = job_states
    return host


def _build_folder(host: FakeHost) -> str:
    return next(c for c in host.commands() if c[:3] == ["rm", "-rf", "--"])[3]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), Interrupted("terminated")],
                         ids=["Ctrl-C", "SIGTERM"])
def test_interrupted_login_build_kills_its_group_then_removes_the_folder(interrupt):
    host = cluster(stream_raises=interrupt)
    notices: list[str] = []
    with pytest.raises(type(interrupt)):
        build_for_profile(INPUTS, host, PROFILE, mode="login", fakeroot=False, force=True,
                           notice=notices.append)
    build = next(c for c in host.commands() if c[0] == "setsid")
    tmp = _build_folder(host)
    assert tmp.startswith("/c/.tmp/X_DL4Mic-")
    pid_file = f"{tmp}/{BUILD_PID_FILE}"
    assert pid_file in build
    stop = stop_group_argv(pid_file)
    assert stop in host.commands()
    assert host.commands().index(stop) < host.commands().index(["rm", "-rf", "--", tmp])
    assert notices == ["stopped the apptainer build on fake (process group 777); removing its "
                       "build folder"]
    assert not any(p.startswith(tmp) for p in (*host.files, *host.dirs))


def test_interrupted_slurm_build_cancels_the_job_then_removes_the_folder(monkeypatch):
    monkeypatch.setattr("hpc_dl4mic.images.builders.time.sleep", lambda _s: None)
    host = cluster(job_states=["PENDING", "RUNNING", KeyboardInterrupt()])
    notices: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        build_for_profile(INPUTS, host, PROFILE, mode="slurm", fakeroot=False, force=True,
                           notice=notices.append)
    (job_id, script), = host.fake_scheduler.submitted
    assert "#SBATCH --partition=cpu" in script and "gres" not in script
    assert host.fake_scheduler.cancelled == [job_id]
    assert notices == [f"cancelled SLURM build job {job_id} on fake; removing its build folder"]
    tmp = _build_folder(host)
    assert not any(p.startswith(tmp) for p in (*host.files, *host.dirs))


def test_slurm_build_job_that_failed_is_a_build_error(monkeypatch):
    monkeypatch.setattr("hpc_dl4mic.images.builders.time.sleep", lambda _s: None)
    from hpc_dl4mic.errors import BuildError

    host = cluster(job_states=["RUNNING", "FAILED"])
    host.fake_scheduler.on_submit = lambda job_id, script: host.add_file(
        script.split("--output=", 1)[1].split("\n", 1)[0], "FATAL: the build failed\n")
    with pytest.raises(BuildError, match="apptainer build of X_DL4Mic on fake failed:\n"
                                         "FATAL: the build failed"):
        build_for_profile(INPUTS, host, PROFILE, mode="slurm", fakeroot=False, force=True,
                           notice=print)
    assert host.fake_scheduler.cancelled == []
