"""Stopping a remote build on Ctrl-C/SIGTERM: the kill command, and what build_image_remote
runs on the cluster when interrupted (login node: kill the process group; SLURM: scancel)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hpc_dl4mic.catalogue.config import Base
from hpc_dl4mic.errors import Interrupted
from hpc_dl4mic.images.build import (
    BUILD_PID_FILE,
    BuildInputs,
    build_image_remote,
    in_own_process_group,
    stop_group_argv,
)
from hpc_dl4mic.remote.profiles import Profile
from hpc_dl4mic.remote.runner import Result


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


def test_stop_command_without_a_pid_file_does_nothing(tmp_path):
    out = subprocess.run(stop_group_argv(str(tmp_path / "none.pid")), capture_output=True,
                         text=True, timeout=30)
    assert (out.returncode, out.stdout) == (0, "")


class FakeCluster:
    """The slice of an ssh.Connection that build_image_remote uses; records commands."""

    def __init__(self, *, stream_raises: BaseException | None = None,
                 job_states: list[str] | None = None) -> None:
        self.target = SimpleNamespace(display="fake")
        self.commands: list[list[str]] = []
        self.stream_raises = stream_raises
        self.job_states = job_states or []

    def home(self) -> str:
        return "/home/u"

    def run(self, argv, **kw) -> Result:
        argv = [str(a) for a in argv]
        self.commands.append(argv)
        if argv[0] == "sbatch":
            return Result(argv, 0, "4242\n", "")
        if argv[:3] == ["scontrol", "show", "job"]:
            state = self.job_states.pop(0) if self.job_states else "CANCELLED"
            if state == "INTERRUPT":
                raise KeyboardInterrupt
            return Result(argv, 0, f"JobId=4242 JobState={state} Reason=None", "")
        return Result(argv, 0, "", "")

    def stream(self, argv, **kw) -> Result:
        self.commands.append([str(a) for a in argv])
        raise self.stream_raises

    def makedirs(self, path: str, mode: int = 0o700) -> None:
        pass

    def exists(self, path: str) -> bool:
        return True

    def write_file(self, path, data, mode=0o600) -> None:
        pass

    def read_file(self, path) -> bytes:
        return b"FATAL: the build failed\n"

    def sftp(self):
        def missing(*_a, **_kw):
            raise OSError("no such file")

        return SimpleNamespace(open=missing, chmod=lambda *a: None,
                               stat=lambda *a: SimpleNamespace(st_mode=0o42775))


INPUTS = BuildInputs("X_DL4Mic", "Bootstrap: scratch\n", {"requirements.txt": b"six\n"},
                     Base("debootstrap", "bookworm"), "a" * 64)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), Interrupted("terminated")],
                         ids=["Ctrl-C", "SIGTERM"])
def test_interrupted_login_build_kills_its_group_then_removes_the_folder(interrupt):
    conn = FakeCluster(stream_raises=interrupt)
    notices: list[str] = []
    with pytest.raises(type(interrupt)):
        build_image_remote(INPUTS, conn, Profile(name="t", host="h", cache_dir="/c"),
                           mode="login", fakeroot=False, force=True, notice=notices.append)
    build = next(c for c in conn.commands if c[0] == "setsid")
    tmp = next(c for c in conn.commands if c[:2] == ["rm", "-rf"])[2]
    assert tmp.startswith("/c/.tmp/X_DL4Mic-")
    pid_file = f"{tmp}/{BUILD_PID_FILE}"
    assert pid_file in build
    stop = stop_group_argv(pid_file)
    assert stop in conn.commands
    assert conn.commands.index(stop) < conn.commands.index(["rm", "-rf", tmp])


def test_interrupted_slurm_build_cancels_the_job_then_removes_the_folder(monkeypatch):
    monkeypatch.setattr("hpc_dl4mic.images.build.time.sleep", lambda _s: None)
    conn = FakeCluster(job_states=["PENDING", "RUNNING", "INTERRUPT", "CANCELLED"])
    notices: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        build_image_remote(INPUTS, conn, Profile(name="t", host="h", cache_dir="/c"),
                           mode="slurm", fakeroot=False, force=True, notice=notices.append)
    sbatch = next(c for c in conn.commands if c[0] == "sbatch")
    assert "--wait" not in sbatch
    assert ["scancel", "4242"] in conn.commands
    rm = next(c for c in conn.commands if c[:2] == ["rm", "-rf"])
    assert conn.commands.index(["scancel", "4242"]) < conn.commands.index(rm)
    assert notices == ["cancelled SLURM build job 4242 on fake; removing its build folder"]


def test_slurm_build_job_that_failed_is_a_build_error(monkeypatch):
    monkeypatch.setattr("hpc_dl4mic.images.build.time.sleep", lambda _s: None)
    from hpc_dl4mic.errors import BuildError

    conn = FakeCluster(job_states=["RUNNING", "FAILED"])
    with pytest.raises(BuildError, match="apptainer build of X_DL4Mic on fake failed"):
        build_image_remote(INPUTS, conn, Profile(name="t", host="h", cache_dir="/c"),
                           mode="slurm", fakeroot=False, force=True, notice=print)
    assert not any(c[0] == "scancel" for c in conn.commands)
