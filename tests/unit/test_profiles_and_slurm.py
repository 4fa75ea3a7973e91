"""Cluster profiles and SLURM script rendering (pure parts)."""

from __future__ import annotations

import pytest

from hpc_dl4mic.errors import InputError
from hpc_dl4mic.jobs.resources import JobResources
from hpc_dl4mic.jobs.slurm import (
    parse_scontrol,
    parse_time,
    render_template,
    sbatch_lines,
    with_modules,
)
from hpc_dl4mic.remote.profiles import (
    Profile,
    get_profile,
    load_profiles,
    read_profiles,
    remove_profile,
    save_profile,
)


@pytest.fixture(autouse=True)
def _config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def test_builtin_local_cluster_profile_points_at_the_local_test_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("HPC_DL4MIC_CLUSTER", str(tmp_path))
    (tmp_path / "cluster.env").write_text("SSH_PORT=2299\nSSH_USER=someone\n")
    profile = load_profiles()["local-cluster"]
    assert (profile.host, profile.port, profile.user) == ("127.0.0.1", 2299, "someone")
    assert profile.builtin


def test_profile_round_trip_through_the_file_with_0600(tmp_path):
    path = tmp_path / "profiles.yaml"
    save_profile(Profile(name="hpc", host="login.example", user="me", port=2200,
                         modules=("apptainer/1.3",),
                         resources=JobResources(gres="gpu:1", time="04:00:00")), path)
    assert path.stat().st_mode & 0o777 == 0o600
    profile = get_profile("hpc", path)
    assert profile.modules == ("apptainer/1.3",) and profile.port == 2200
    assert "local-cluster" in load_profiles(path)


@pytest.mark.parametrize("body,message", [
    ("profiles:\n  x:\n    user: me\n", "profiles.x.host: required"),
    ("profiles:\n  x:\n    host: h\n    port: twenty\n", "profiles.x.port"),
    ("profiles:\n  x:\n    host: h\n    port: 70000\n", "profiles.x.port"),
    ("profiles:\n  x:\n    host: h\n    colour: red\n", "profiles.x.colour: unknown key"),
    ("profiles:\n  x:\n    host: h\n    build: cloud\n", "profiles.x.build"),
    ("profiles:\n  x:\n    host: h\n    time: 99:99\n", "profiles.x.time '99:99'"),
    ("profiles:\n  x:\n    host: h\n    node_internet: maybe\n",
     "profiles.x.node_internet: expected true or false"),
    ("profiles:\n  x:\n    host: h\n    time: 4:00:00\n    port: 1:00\n", "profiles.x.port"),
    ("profiles:\n  x: [1]\n", "profiles.x: expected a mapping"),
])
def test_broken_profile_entry_is_a_one_line_error_naming_file_and_key(tmp_path, body, message):
    path = tmp_path / "profiles.yaml"
    path.write_text(body)
    with pytest.raises(InputError) as info:
        get_profile("x", path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value) and "--" not in str(info.value)


@pytest.mark.parametrize("body,message", [
    ("profiles: [1, 2]\n", "top-level 'profiles:' mapping"),
    ("profiles:\n  x: [\n", "profiles.yaml:3:1: not valid YAML"),
    ("profiles:\n  x:\n    host: a: b\n", "profiles.yaml:3:12: not valid YAML"),
])
def test_bad_profiles_file_is_a_one_line_error(tmp_path, body, message):
    path = tmp_path / "profiles.yaml"
    path.write_text(body)
    with pytest.raises(InputError) as info:
        load_profiles(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_broken_entry_does_not_hide_the_others(tmp_path):
    path = tmp_path / "profiles.yaml"
    path.write_text("profiles:\n  bad:\n    host: h\n    port: 0\n  good:\n    host: g\n")
    warnings: list[str] = []
    profiles = load_profiles(path, warn=warnings.append)
    assert "good" in profiles and "local-cluster" in profiles and "bad" not in profiles
    assert len(warnings) == 1 and "profiles.bad.port" in warnings[0]
    assert get_profile("good", path).host == "g"


def test_unquoted_clock_time_in_the_file_is_read_as_written(tmp_path):
    path = tmp_path / "profiles.yaml"
    path.write_text("profiles:\n  p:\n    host: h\n    time: 4:00:00\n    partition: 007\n"
                    "    modules: [cuda/11.8, 3.10]\n")
    profile = get_profile("p", path)
    assert profile.resources.time == "04:00:00"
    assert profile.resources.partition == "007" and profile.modules == ("cuda/11.8", "3.10")
    assert "--time=04:00:00" in sbatch_lines(profile)


def test_missing_explicit_profiles_file_is_an_error(tmp_path):
    with pytest.raises(InputError, match="none.yaml: no such profiles file"):
        load_profiles(tmp_path / "none.yaml")
    with pytest.raises(InputError, match="none.yaml"):
        get_profile("local-cluster", tmp_path / "none.yaml")


def test_missing_default_profiles_file_gives_the_builtin_only():
    assert list(load_profiles()) == ["local-cluster"]


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(InputError, match="known: local-cluster"):
        get_profile("nope")


@pytest.mark.parametrize("profile,message", [
    (Profile(name="p", host="h", port=0), "profiles.p.port"),
    (Profile(name="p", host="h", resources=JobResources(time="99:99")),
     "profiles.p.time '99:99'"),
    (Profile(name="p", host="h", resources=JobResources(cpus=0)), "profiles.p.cpus"),
    (Profile(name="p", host=""), "profiles.p.host: required"),
    (Profile(name="localhost", host="h"), "'localhost'"),
    (Profile(name="local-cluster", host="h"), "'local-cluster'"),
    (Profile(name="a b", host="h"), "'a b'"),
    (Profile(name="-x", host="h"), "'-x'"),
])
def test_bad_profile_is_not_saved(tmp_path, profile, message):
    path = tmp_path / "profiles.yaml"
    save_profile(Profile(name="ok", host="h"), path)
    before = path.read_text()
    with pytest.raises(InputError, match=message.replace(".", r"\.").replace("(", r"\(")):
        save_profile(profile, path)
    assert path.read_text() == before


def test_saved_profile_has_normalised_time_and_node_internet(tmp_path):
    path = tmp_path / "profiles.yaml"
    save_profile(Profile(name="p", host="h", resources=JobResources(time="90"),
                         node_internet=True, known_hosts="~/kh"), path)
    profile = get_profile("p", path)
    assert (profile.resources.time, profile.node_internet,
            profile.known_hosts) == ("01:30:00", True, "~/kh")
    assert get_profile("local-cluster", path).node_internet is False


def test_remove_profile_keeps_the_others_and_removes_a_broken_one(tmp_path):
    path = tmp_path / "profiles.yaml"
    path.write_text("profiles:\n  bad:\n    host: h\n    port: 0\n  good:\n    host: g\n")
    remove_profile("bad", path)
    profiles, broken = read_profiles(path)
    assert not broken and set(profiles) == {"local-cluster", "good"}
    with pytest.raises(InputError, match="no profile named 'bad'"):
        remove_profile("bad", path)


def test_remote_dirs_expand_home():
    p = Profile(name="p", host="h")
    assert p.remote_work_dir("/home/me") == "/home/me/.hpc-dl4mic"
    assert p.remote_cache_dir("/home/me") == "/home/me/.hpc-dl4mic/images"
    q = Profile(name="q", host="h", cache_dir="/shared/images")
    assert q.remote_cache_dir("/home/me") == "/shared/images"


def test_sbatch_lines_from_profile_and_overrides():
    p = Profile(name="p", host="h", sbatch_extra=("--constraint=a100",),
                resources=JobResources(partition="gpu", gres="gpu:1", time="02:00:00",
                                       account="lab"))
    lines = sbatch_lines(p, JobResources(time="00:30:00", cpus=4))
    assert "--partition=gpu" in lines and "--time=00:30:00" in lines
    assert "--cpus-per-task=4" in lines and "--account=lab" in lines
    assert lines[-1] == "--constraint=a100"


@pytest.mark.parametrize("text,expected", [
    ("01:30", "01:30:00"), ("4:00:00", "04:00:00"), ("120", "02:00:00"), ("5", "00:05:00"),
    ("1-2", "1-02:00:00"), ("1-02:30", "1-02:30:00"), ("2-03:04:05", "2-03:04:05"),
    ("36:00", "1-12:00:00"), ("1440", "1-00:00:00"),
])
def test_walltime_forms_are_normalised_to_days_hours_minutes_seconds(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["99:99", "1:60", "1:00:60", "1-24", "0", "00:00", "1:2",
                                  "1-2:3", "forever", "1:00:00:00", "-5"])
def test_bad_walltime_is_refused_naming_the_option(text):
    with pytest.raises(InputError, match=f"--time '{text}'"):
        parse_time(text)


def test_sbatch_time_reaches_slurm_unambiguous():
    lines = sbatch_lines(Profile(name="p", host="h"), JobResources(time="01:30"))
    assert "--time=01:30:00" in lines
    assert "--time=02:00:00" in sbatch_lines(Profile(name="p", host="h"),
                                             JobResources(time="120"))


@pytest.mark.parametrize("kw", [{"time": "forever"}, {"partition": "gpu; rm -rf ~"},
                                {"mem": "4G\n#SBATCH --x"}])
def test_sbatch_values_are_checked(kw):
    with pytest.raises(InputError):
        sbatch_lines(Profile(name="p", host="h"), JobResources(**kw))


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
