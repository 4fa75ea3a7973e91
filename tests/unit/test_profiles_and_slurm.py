"""Cluster profiles and SLURM script rendering (pure parts)."""

from __future__ import annotations

import pytest

from hpc_dl4mic.errors import InputError
from hpc_dl4mic.jobs.slurm import parse_scontrol, render_template, sbatch_lines, with_modules
from hpc_dl4mic.remote.profiles import Profile, get_profile, load_profiles, save_profile


def test_builtin_localhost_profile_points_at_the_local_test_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("HPC_DL4MIC_CLUSTER", str(tmp_path))
    (tmp_path / "cluster.env").write_text("SSH_PORT=2299\nSSH_USER=someone\n")
    profile = load_profiles(tmp_path / "none.yaml")["localhost"]
    assert (profile.host, profile.port, profile.user) == ("127.0.0.1", 2299, "someone")
    assert profile.builtin


def test_profile_round_trip_through_the_file_with_0600(tmp_path):
    path = tmp_path / "profiles.yaml"
    save_profile(Profile(name="hpc", host="login.example", user="me", port=2200,
                         modules=("apptainer/1.3",), gres="gpu:1", time="04:00:00"), path)
    assert path.stat().st_mode & 0o777 == 0o600
    profile = get_profile("hpc", path)
    assert profile.modules == ("apptainer/1.3",) and profile.port == 2200
    assert "localhost" in load_profiles(path)


@pytest.mark.parametrize("body,message", [
    ("profiles:\n  x:\n    user: me\n", "profiles.x.host: required"),
    ("profiles:\n  x:\n    host: h\n    port: twenty\n", "profiles.x.port"),
    ("profiles:\n  x:\n    host: h\n    colour: red\n", "profiles.x.colour: unknown key"),
    ("profiles:\n  x:\n    host: h\n    build: cloud\n", "profiles.x.build"),
    ("profiles: [1, 2]\n", "top-level 'profiles:' mapping"),
    ("profiles:\n  x: [\n", "cannot read profiles"),
])
def test_bad_profiles_file_is_a_one_line_error(tmp_path, body, message):
    path = tmp_path / "profiles.yaml"
    path.write_text(body)
    with pytest.raises(InputError) as info:
        load_profiles(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_profile_lists_the_known_ones(tmp_path):
    with pytest.raises(InputError, match="known: localhost"):
        get_profile("nope", tmp_path / "none.yaml")


def test_remote_dirs_expand_home():
    p = Profile(name="p", host="h")
    assert p.remote_work_dir("/home/me") == "/home/me/.hpc-dl4mic"
    assert p.remote_cache_dir("/home/me") == "/home/me/.hpc-dl4mic/images"
    q = Profile(name="q", host="h", cache_dir="/shared/images")
    assert q.remote_cache_dir("/home/me") == "/shared/images"


def test_sbatch_lines_from_profile_and_overrides():
    p = Profile(name="p", host="h", partition="gpu", gres="gpu:1", time="02:00:00",
                account="lab", sbatch_extra=("--constraint=a100",))
    lines = sbatch_lines(p, time="00:30:00", cpus=4)
    assert "--partition=gpu" in lines and "--time=00:30:00" in lines
    assert "--cpus-per-task=4" in lines and "--account=lab" in lines
    assert lines[-1] == "--constraint=a100"


@pytest.mark.parametrize("kw", [{"time": "forever"}, {"partition": "gpu; rm -rf ~"},
                                {"mem": "4G\n#SBATCH --x"}])
def test_sbatch_values_are_checked(kw):
    with pytest.raises(InputError):
        sbatch_lines(Profile(name="p", host="h"), **kw)


def test_build_script_quotes_every_value():
    text = render_template("build.sbatch.j2", job_name="build x", log_path="/tmp/a b/log",
                           sbatch_lines=["--partition=cpu"], image_name="X", key="k" * 64,
                           context_dir="/tmp/it's here", modules=["apptainer/1.3"],
                           build_argv=["apptainer", "build", "image.sif", "X.def"])
    assert "#SBATCH --job-name='build x'" in text
    assert "cd '/tmp/it'\"'\"'s here'" in text
    assert "exec apptainer build image.sif X.def" in text


def test_with_modules_runs_argv_after_module_load():
    argv = with_modules(["apptainer", "build", "a b.sif"], ["apptainer/1.3"])
    assert argv[:2] == ["bash", "-lc"]
    assert argv[2] == 'module load apptainer/1.3 && exec "$@"'
    assert argv[4:] == ["apptainer", "build", "a b.sif"]
    assert with_modules(["x"], []) == ["x"]


def test_parse_scontrol_one_line():
    text = ("JobId=12 JobName=jupyter UserId=hpcuser(1001) JobState=RUNNING Reason=None "
            "BatchHost=vm StartTime=2026-11-22T00:10:00 TimeLimit=01:00:00 "
            "StdOut=/home/hpcuser/x y.log\n")
    fields = parse_scontrol(text)
    assert fields["JobState"] == "RUNNING" and fields["BatchHost"] == "vm"
    assert fields["StdOut"] == "/home/hpcuser/x y.log"
    assert fields["UserId"] == "hpcuser(1001)"
