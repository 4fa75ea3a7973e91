"""Real SIF builds with apptainer: content-addressed cache, failures, interruptions, remote."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from seeddata import COLAB_NOTEBOOKS, interactive_signals

from hpc_dl4mic.catalogue.config import resolve_target
from hpc_dl4mic.errors import BuildError
from hpc_dl4mic.images.build import (
    KEY_LABEL,
    build_image,
    inspect_labels,
    prepare_notebook_image,
    verify_cache,
)
from hpc_dl4mic.images.cache import ImageCache

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
SMALL_REQUIREMENTS = DATA / "requirements-small.txt"
CA_CERTS = Path("/usr/local/share/ca-certificates")
NOTEBOOK = COLAB_NOTEBOOKS / "StarDist_2D_ZeroCostDL4Mic.ipynb"
TARGET = "StarDist_2D_DL4Mic"  # a real config with Python 3.11 (= Debian bookworm's)


def ca_certs() -> Path | None:
    return CA_CERTS if any(CA_CERTS.glob("*.crt")) else None


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hpc_dl4mic.cli", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, **kw)


def image_args(base_sif: Path, *extra: str) -> list[str]:
    args = [TARGET, "--base", f"localimage:{base_sif}", "--notebook", str(NOTEBOOK),
            "--requirements", str(SMALL_REQUIREMENTS), *extra]
    if ca_certs():
        args += ["--ca-certs", str(ca_certs())]
    return args


@pytest.fixture(scope="session")
def image_cache(tmp_path_factory) -> ImageCache:
    return ImageCache(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def notebook_image(base_sif, image_cache):
    inputs = prepare_notebook_image(resolve_target(TARGET), notebook=NOTEBOOK,
                                    requirements=SMALL_REQUIREMENTS, base=f"localimage:{base_sif}",
                                    ca_certs=ca_certs())
    result = build_image(inputs, image_cache)
    assert not result.cached
    return inputs, result


def test_built_image_runs_python_with_nv_and_has_the_notebooks(notebook_image):
    inputs, result = notebook_image
    probe = ("import os, jupyterlab, papermill, ipykernel; "
             "print(sorted(os.listdir('/opt/hpc-dl4mic/notebooks')))")
    out = subprocess.run(["apptainer", "exec", "--nv", str(result.path), "python", "-c", probe],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    names = [n.split("notebooks/", 1)[1] for n in inputs.files if n.startswith("notebooks/")]
    for name in names:
        assert name in out.stdout
    assert subprocess.run(["apptainer", "test", str(result.path)], capture_output=True,
                          timeout=300).returncode == 0


def test_inspect_shows_provenance_labels(notebook_image):
    inputs, result = notebook_image
    labels = inspect_labels(result.path)
    assert labels["org.hpc-dl4mic.notebook"] == TARGET
    assert labels[KEY_LABEL] == inputs.key
    assert labels["org.hpc-dl4mic.config-sha256"] == resolve_target(TARGET).sha256
    assert labels["org.hpc-dl4mic.python-version"] == "3.11"
    assert "org.hpc-dl4mic.tool-version" in labels


class NoApptainer:
    def run(self, *a, **kw):
        raise AssertionError("a cache hit must not call apptainer")

    stream = run


def test_second_build_of_same_input_is_a_cache_hit_without_apptainer(notebook_image,
                                                                      image_cache, base_sif):
    inputs, first = notebook_image
    again = prepare_notebook_image(resolve_target(TARGET), notebook=NOTEBOOK,
                                   requirements=SMALL_REQUIREMENTS,
                                   base=f"localimage:{base_sif}", ca_certs=ca_certs())
    assert again.key == inputs.key
    hit = build_image(again, image_cache, runner=NoApptainer())
    assert hit.cached and hit.path == first.path
    out = cli("build", *image_args(base_sif, "--cache", str(image_cache.directory), "--json"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cached"] is True


def test_cache_list_and_verify_report_the_image(notebook_image, image_cache):
    out = cli("cache", "list", "--cache", str(image_cache.directory), "--json")
    records = json.loads(out.stdout)
    assert [r["name"] for r in records] == [TARGET]
    assert records[0]["labels"]["org.hpc-dl4mic.notebook"] == TARGET
    verify = cli("cache", "verify", "--cache", str(image_cache.directory))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("ok")


def test_truncated_image_fails_verify_and_a_rebuild_replaces_it(notebook_image, tmp_path):
    inputs, result = notebook_image
    cache = ImageCache(tmp_path / "corrupt")
    cache.ensure()
    sif = cache.sif_path(inputs.name, inputs.key)
    shutil.copyfile(result.path, sif)
    shutil.copyfile(result.path.with_suffix(".json"), sif.with_suffix(".json"))
    with open(sif, "r+b") as handle:
        handle.truncate(sif.stat().st_size // 2)
    report = verify_cache(cache)
    assert not report[0].ok and "truncated" in report[0].problems[0]
    out = cli("cache", "verify", "--cache", str(cache.directory))
    assert out.returncode == 1 and "BAD" in out.stdout
    assert cache.lookup(inputs.name, inputs.key) is None
    rebuilt = build_image(inputs, cache)
    assert not rebuilt.cached and rebuilt.path == sif
    assert all(r.ok for r in verify_cache(cache))


def _wait_for_build_dir(cache_dir: Path, proc: subprocess.Popen, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tmp = cache_dir / ".tmp"  # build folders, and the builds' lock files beside them
        dirs = [d for d in tmp.glob("*") if d.is_dir()] if tmp.is_dir() else []
        if dirs and (dirs[0] / f"{TARGET}.def").exists():
            return dirs[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("the build never started")


def _apptainer_builds_in(directory: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "cwd").startswith(str(directory)):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_build_leaves_no_image_and_no_leftovers(base_sif, tmp_path, sig):
    cache_dir = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "hpc_dl4mic.cli", "build",
                             *image_args(base_sif, "--cache", str(cache_dir))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, preexec_fn=interactive_signals)
    build_dir = _wait_for_build_dir(cache_dir, proc)
    time.sleep(3)  # apptainer is extracting the base by now
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err or "terminated" in err
    assert not list(cache_dir.glob("*.sif"))
    assert not build_dir.exists()
    assert _apptainer_builds_in(build_dir) == []


def test_killed_build_never_leaves_an_image_in_the_cache(base_sif, tmp_path):
    cache_dir = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "hpc_dl4mic.cli", "build",
                             *image_args(base_sif, "--cache", str(cache_dir))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, preexec_fn=interactive_signals)
    build_dir = _wait_for_build_dir(cache_dir, proc)
    proc.kill()
    proc.wait(30)
    for pid in _apptainer_builds_in(build_dir):  # the orphaned apptainer: stop it too
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except OSError:
            pass
    assert not list(cache_dir.glob("*.sif"))
    assert ImageCache(cache_dir).records() == []
    assert build_dir in ImageCache(cache_dir).prune(tmp_older_than=0)
    assert not build_dir.exists()


def test_failed_post_is_a_clear_error_with_the_failing_command_output(base_sif, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("hpc-dl4mic-no-such-package-xyz==9.9.9\n")
    inputs = prepare_notebook_image(resolve_target(TARGET), notebook=NOTEBOOK,
                                    requirements=requirements, base=f"localimage:{base_sif}",
                                    ca_certs=ca_certs())
    cache = ImageCache(tmp_path / "cache")
    with pytest.raises(BuildError) as info:
        build_image(inputs, cache)
    assert "apptainer build of StarDist_2D_DL4Mic failed" in str(info.value)
    assert "hpc-dl4mic-no-such-package-xyz" in str(info.value)
    assert not list(cache.directory.glob("*.sif"))
    out = cli("build", TARGET, "--base", f"localimage:{base_sif}", "--notebook", str(NOTEBOOK),
              "--requirements", str(requirements), "--cache", str(cache.directory),
              *(["--ca-certs", str(ca_certs())] if ca_certs() else []))
    assert out.returncode == 1
    assert "hpc-dl4mic-no-such-package-xyz" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.fixture
def remote_profile(cluster, tmp_path):
    cache_dir = f"{cluster.user_home}/images-test-{os.getpid()}-{time.time_ns()}"
    profile_file = tmp_path / "profiles.yaml"
    profile_file.write_text(
        "profiles:\n  testcluster:\n"
        f"    host: {cluster.host}\n    port: {cluster.port}\n    user: {cluster.user}\n"
        f"    identity: {cluster.key}\n    known_hosts: {cluster.known_hosts}\n"
        f"    cache_dir: {cache_dir}\n    build: slurm\n    partition: cpu\n"
        "    time: '00:20:00'\n")
    yield profile_file, cache_dir
    cluster.ssh(["rm", "-rf", cache_dir], check=False)


def test_remote_build_over_ssh_as_a_slurm_job_then_cache_hit(cluster, base_sif, remote_profile):
    profile_file, cache_dir = remote_profile
    args = [*image_args(base_sif, "--on", "testcluster", "--profile-file", str(profile_file),
                        "--json")]
    first = cli("build", *args, timeout=900)
    assert first.returncode == 0, first.stderr
    built = json.loads(first.stdout)
    assert built["cached"] is False and built["path"].startswith(cache_dir + "/")
    # the image is in the cluster's cache, owned by the cluster user, with its record
    listing = cluster.ssh(["ls", "-l", cache_dir]).stdout
    assert Path(built["path"]).name in listing and cluster.user in listing
    record = json.loads(cluster.ssh(["cat", built["path"][:-4] + ".json"]).stdout)
    assert record["labels"][KEY_LABEL] == record["key"] == built["key"]
    run = cluster.ssh(shlex.join(["apptainer", "exec", built["path"], "python3", "-c",
                                  "print(42)"]))
    assert run.stdout.strip().endswith("42")
    second = cli("build", *args, timeout=300)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["cached"] is True


def test_remote_build_on_the_login_node(cluster, base_sif, remote_profile):
    profile_file, cache_dir = remote_profile
    out = cli("build", *image_args(base_sif, "--on", "testcluster", "--profile-file",
                                   str(profile_file), "--build-on", "login", "--json"),
              timeout=900)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["path"].startswith(cache_dir + "/")


def test_cache_build_continues_past_failures_and_reports_them(notebook_image, image_cache,
                                                              base_sif, tmp_path):
    inputs, result = notebook_image
    config = resolve_target(TARGET)
    requirements_dir = tmp_path / "reqs"
    requirements_dir.mkdir()
    shutil.copyfile(SMALL_REQUIREMENTS, requirements_dir / config.requirements_filename)
    out = cli("cache", "build", TARGET, "FRUNet-Exosomes", "--notebook-dir",
              str(COLAB_NOTEBOOKS), "--requirements-dir", str(requirements_dir), "--base",
              f"localimage:{base_sif}", "--cache", str(image_cache.directory), "--json",
              *(["--ca-certs", str(ca_certs())] if ca_certs() else []), timeout=900)
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert [b["name"] for b in report["built"]] == [TARGET]
    assert report["built"][0]["cached"] is True  # same inputs as the image built above
    assert report["built"][0]["path"] == str(result.path)
    assert [f["name"] for f in report["failed"]] == ["FRUNet-Exosomes"]
    assert "--notebook" in report["failed"][0]["error"]


def _remote_build_group(cache_dir: str, proc: subprocess.Popen, timeout: float = 180
                        ) -> tuple[Path, int]:
    """(remote build folder, process group of its apptainer build) once the build runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid_file in Path(cache_dir).glob(".tmp/*/build.pid"):
            try:
                pgid = int(pid_file.read_text())
            except (OSError, ValueError):
                continue
            if any("apptainer" in " ".join(p[2]) for p in _group_members(pgid)):
                return pid_file.parent, pgid
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("the remote build never started")


def _group_members(pgid: int) -> list[tuple[int, str, list[str]]]:
    """Live (non-zombie) processes of process group or session ``pgid``: (pid, state, argv)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            argv = (stat.parent / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and pgid in (int(fields[2]), int(fields[3])):
            found.append((int(stat.parent.name), fields[0], argv))
    return found


def _builds_of(user: str, needle: str) -> list[str]:
    """`apptainer build` / mksquashfs processes of ``user`` whose command line or working
    folder mentions ``needle`` (this test's remote cache), as `pid argv` lines."""
    import pwd

    uid = pwd.getpwnam(user).pw_uid
    lines = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if proc.stat().st_uid != uid:
                continue
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if ("apptainer build" in argv or "mksquashfs" in argv) and \
                (needle in argv or cwd.startswith(needle)):
            lines.append(f"{proc.name} {argv}")
    return lines


@pytest.mark.parametrize("phase,sig", [("build", signal.SIGTERM), ("mksquashfs", signal.SIGINT)],
                         ids=["SIGTERM-during-build", "SIGINT-during-mksquashfs"])
def test_interrupted_login_node_build_stops_remote_apptainer_and_cleans_up(
        cluster, base_sif, remote_profile, phase, sig):
    from seeddata import interactive_signals

    profile_file, cache_dir = remote_profile
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpc_dl4mic.cli", "build",
         *image_args(base_sif, "--on", "testcluster", "--profile-file", str(profile_file),
                     "--build-on", "login", "--force")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        preexec_fn=interactive_signals)
    try:
        build_dir, pgid = _remote_build_group(cache_dir, proc)
        seen: dict[int, list[str]] = {}
        deadline = time.monotonic() + (240 if phase == "mksquashfs" else 3)
        while time.monotonic() < deadline:
            seen.update({pid: argv for pid, _state, argv in _group_members(pgid)})
            if phase == "mksquashfs" and any("mksquashfs" in " ".join(a) for a in seen.values()):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        else:
            assert phase == "build", f"mksquashfs never ran: {seen}"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.count("stopped the apptainer build") == 1, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (_group_members(pgid)
                                           or _builds_of(cluster.user, cache_dir)):
        time.sleep(0.5)
    assert _group_members(pgid) == [], _group_members(pgid)
    assert _builds_of(cluster.user, cache_dir) == []
    assert not any(pid_alive_non_zombie(pid) for pid in seen), seen
    assert not build_dir.exists()
    assert list(Path(cache_dir).glob("*.sif")) == [] and list(Path(cache_dir).glob("*.json")) == []
    assert list(Path(cache_dir).glob(".tmp/*")) == []


def test_killed_client_of_a_login_node_build_leaves_no_apptainer_running(
        cluster, base_sif, remote_profile):
    # SIGKILL: the client cannot stop anything; the build's group finds out that its
    # output goes nowhere (keep-alive lines) and stops itself
    profile_file, cache_dir = remote_profile
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpc_dl4mic.cli", "build",
         *image_args(base_sif, "--on", "testcluster", "--profile-file", str(profile_file),
                     "--build-on", "login", "--force")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        _build_dir, pgid = _remote_build_group(cache_dir, proc)
        seen: set[int] = set()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # mksquashfs: the long step that prints nothing
            members = _group_members(pgid)
            seen.update(pid for pid, _state, _argv in members)
            if any("mksquashfs" in " ".join(argv) for _pid, _state, argv in members):
                break
            assert proc.poll() is None
            time.sleep(0.2)
        else:
            raise AssertionError("mksquashfs never ran")
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 25  # TERM within the keep-alive period, KILL 10 s later
    while time.monotonic() < deadline and (_group_members(pgid)
                                           or _builds_of(cluster.user, cache_dir)):
        time.sleep(0.5)
    assert _builds_of(cluster.user, cache_dir) == []
    assert _group_members(pgid) == [], _group_members(pgid)
    assert not any(pid_alive_non_zombie(pid) for pid in seen), seen
    assert list(Path(cache_dir).glob("*.sif")) == []


def pid_alive_non_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_interrupted_slurm_build_job_is_cancelled_and_cleaned_up(cluster, base_sif,
                                                                 remote_profile):
    profile_file, cache_dir = remote_profile
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpc_dl4mic.cli", "build",
         *image_args(base_sif, "--on", "testcluster", "--profile-file", str(profile_file),
                     "--build-on", "slurm", "--force", "-v")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        build_dir = None
        while time.monotonic() < deadline:
            logs = list(Path(cache_dir).glob(".tmp/*/build.log"))
            if logs and "Verifying bootstrap image" in logs[0].read_text(errors="replace"):
                build_dir = logs[0].parent
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.3)
        assert build_dir is not None, "the build job never started"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    cancelled = [line for line in err.splitlines() if "cancelled SLURM build job" in line]
    assert len(cancelled) == 1, err
    job_id = cancelled[0].split("job ", 1)[1].split()[0]
    state = cluster.ssh(["scontrol", "show", "job", "-o", job_id]).stdout
    assert "JobState=CANCELLED" in state, state
    assert _builds_of(cluster.user, cache_dir) == []
    assert not build_dir.exists()
    assert list(Path(cache_dir).glob("*.sif")) == []


def test_base_for_a_python_39_config_is_bullseye_with_its_own_python(cluster, tmp_path):
    """Offline Python fidelity: `base --for` picks the suite whose python3 is the config's
    (CARE 3D asks for 3.9: bullseye), cached by key like the bookworm base."""
    cache = Path(os.environ.get("HPC_DL4MIC_TEST_CACHE", "/var/tmp/hpc-dl4mic-test-cache"))
    ca = Path("/usr/local/share/ca-certificates")
    argv = [sys.executable, "-m", "hpc_dl4mic.cli", "base", "--for", "CARE_3D_DL4Mic",
            "--cache", str(cache), *(["--ca-certs", str(ca)] if any(ca.glob("*.crt")) else [])]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=1500,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    sif = out.stdout.strip().splitlines()[-1]
    assert "debian-bullseye-base-" in sif
    version = subprocess.run(["apptainer", "exec", sif, "/opt/venv/bin/python", "-c",
                              "import sys, jupyterlab, papermill; print(sys.version)"],
                             capture_output=True, text=True, timeout=120, check=True)
    assert version.stdout.startswith("3.9.")
