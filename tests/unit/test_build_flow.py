"""The build flow over a Host (FakeHost): cache hits, one apptainer build, record modes,
the SLURM builder, failures and interrupts."""

from __future__ import annotations

import json

import pytest
from fakehost import FakeHost

from hpc_dl4mic.catalogue.config import Base
from hpc_dl4mic.errors import BuildError
from hpc_dl4mic.images.build import BuildInputs, build
from hpc_dl4mic.images.builders import make_builder
from hpc_dl4mic.images.cache import ImageCache

INPUTS = BuildInputs("X_DL4Mic", "Bootstrap: scratch\n", {"notebooks/x.ipynb": b"{}",
                                                          "requirements.txt": b"six\n"},
                     Base("debootstrap", "bookworm"), "a" * 64)
LABELS = {"org.hpc-dl4mic.image-key": "a" * 64}


def host_with_apptainer(cache_mode: int = 0o755, *, build_rc: int = 0) -> FakeHost:
    host = FakeHost(display="fake")
    host.makedirs("/c", cache_mode)

    def apptainer_build(argv, call):
        if build_rc:
            return (build_rc, "step 1\nFATAL: pip failed\n", "")
        host.add_file(f"{call.cwd}/image.sif", b"SIF-bytes")
        return "built\n"

    host.on("apptainer", "build", do=apptainer_build)
    host.on("setsid", do=apptainer_build)  # a login-node build in its own process group
    host.on("apptainer", "inspect", do=lambda argv, call: json.dumps(
        {"data": {"attributes": {"labels": LABELS}}}))
    return host


def builds(host: FakeHost) -> list[list[str]]:
    return [c for c in host.commands() if c[:2] == ["apptainer", "build"]]


@pytest.mark.parametrize("cache_mode,file_mode", [(0o2775, 0o664), (0o755, 0o644)],
                         ids=["group-writable", "private"])
def test_a_miss_runs_one_build_and_writes_image_and_record_with_the_cache_mode(cache_mode,
                                                                              file_mode):
    host = host_with_apptainer(cache_mode)
    result = build(INPUTS, host, "/c", builder=make_builder("login", fakeroot=True))
    assert not result.cached
    (argv,) = [c[c.index("apptainer"):] for c in host.commands() if c[0] == "setsid"]
    assert argv == ["apptainer", "build", "--force", "--fakeroot", "image.sif", "X_DL4Mic.def"]
    sif = "/c/X_DL4Mic-aaaaaaaaaaaaaaaa.sif"
    assert str(result.path) == sif and host.files[sif].data == b"SIF-bytes"
    record = json.loads(host.files[sif[:-4] + ".json"].data)
    assert record["key"] == "a" * 64 and record["labels"] == LABELS and record["size"] == 9
    assert host.files[sif].mode == host.files[sif[:-4] + ".json"].mode == file_mode
    assert host.dirs["/c/.tmp"] == (0o3770 if cache_mode & 0o020 else 0o700)
    assert not any(p.startswith("/c/.tmp/") for p in (*host.files, *host.dirs))


def test_a_hit_runs_nothing():
    host = host_with_apptainer()
    build(INPUTS, host, "/c", builder=make_builder("here", fakeroot=False))
    assert len(builds(host)) == 1
    host.calls.clear()
    again = build(INPUTS, host, "/c", builder=make_builder("here", fakeroot=False))
    assert again.cached and host.calls == []
    forced = build(INPUTS, host, "/c", builder=make_builder("here", fakeroot=False), force=True)
    assert not forced.cached and len(builds(host)) == 1


def test_new_cache_folders_follow_their_parent():
    host = host_with_apptainer()
    host.makedirs("/shared", 0o2775)
    build(INPUTS, host, "/shared/images", builder=make_builder("here", fakeroot=False))
    assert host.dirs["/shared/images"] == 0o2775
    assert host.files["/shared/images/X_DL4Mic-aaaaaaaaaaaaaaaa.sif"].mode == 0o664
    build(INPUTS, host, "/home/u/images", builder=make_builder("here", fakeroot=False))
    assert host.dirs["/home/u/images"] == 0o755
    assert host.files["/home/u/images/X_DL4Mic-aaaaaaaaaaaaaaaa.sif"].mode == 0o644


def test_a_failed_build_is_a_build_error_with_the_log_tail_and_leaves_nothing():
    host = host_with_apptainer(build_rc=1)
    with pytest.raises(BuildError, match="apptainer build of X_DL4Mic on fake failed "
                                         r"\(exit 1\):\nstep 1\nFATAL: pip failed"):
        build(INPUTS, host, "/c", builder=make_builder("here", fakeroot=False))
    assert not [p for p in host.files if p.endswith((".sif", ".json"))]
    assert not any(p.startswith("/c/.tmp/") for p in (*host.files, *host.dirs))


def test_an_interrupt_removes_the_build_folder():
    host = host_with_apptainer()

    def interrupted(argv, call):
        raise KeyboardInterrupt

    host.handlers.insert(0, (("apptainer", "build"), interrupted))
    with pytest.raises(KeyboardInterrupt):
        build(INPUTS, host, "/c", builder=make_builder("here", fakeroot=False))
    assert any(c[:3] == ["rm", "-rf", "--"] for c in host.commands())
    assert not any(p.startswith("/c/.tmp/") for p in (*host.files, *host.dirs))


def test_slurm_builder_submits_one_job_and_waits_for_it(monkeypatch):
    monkeypatch.setattr("hpc_dl4mic.images.builders.time.sleep", lambda _s: None)
    host = host_with_apptainer()
    host.fake_scheduler.states = ["PENDING", "RUNNING", "COMPLETED"]

    def job_ran(job_id, script):
        folder = script.split("\ncd ", 1)[1].split("\n", 1)[0]
        host.add_file(f"{folder}/image.sif", b"SIF-from-job")
        host.add_file(f"{folder}/build.log", "INFO: build complete\n")

    host.fake_scheduler.on_submit = job_ran
    lines: list[str] = []
    result = build(INPUTS, host, "/c", progress=lines.append,
                   builder=make_builder("slurm", fakeroot=False, sbatch_lines=["--time=01:00:00"]))
    (job_id, script), = host.fake_scheduler.submitted
    assert "#SBATCH --time=01:00:00" in script
    assert "exec apptainer build --force image.sif X_DL4Mic.def" in script
    assert builds(host) == []  # the job ran it, not the flow
    assert f"build job {job_id} submitted" in lines and "INFO: build complete" in lines
    assert host.files[str(result.path)].data == b"SIF-from-job"


def test_image_cache_over_a_host_lists_and_prunes():
    host = host_with_apptainer()
    build(INPUTS, host, "/c", builder=make_builder("here", fakeroot=False))
    cache = ImageCache("/c", host)
    assert [r.key for r in cache.records()] == ["a" * 64]
    assert cache.prune(keep=0) and cache.records() == []
