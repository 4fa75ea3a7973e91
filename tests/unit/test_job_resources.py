"""JobResources declared once: the CLI options, profile keys and sbatch lines derive from it."""

from __future__ import annotations

import pytest
from badinput import Case, check
from click.testing import CliRunner

from hpc_dl4mic.cli import main
from hpc_dl4mic.jobs.resources import RESOURCE_FIELDS, RESOURCE_SPECS, JobResources
from hpc_dl4mic.jobs.slurm import sbatch_lines
from hpc_dl4mic.remote.profiles import PROFILE_KEYS, Profile, get_profile, save_profile

T = "StarDist_2D_DL4Mic"


@pytest.fixture
def env(tmp_path):
    return {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
            "XDG_CACHE_HOME": str(tmp_path / "cache")}


@pytest.mark.parametrize("command", [["submit"], ["profile", "add"]])
def test_every_resource_field_is_an_option_with_its_help(command):
    out = CliRunner().invoke(main, [*command, "--help"], terminal_width=200).output
    for name, spec in RESOURCE_SPECS.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(f"--{name} "))
        assert spec.help.split(":")[0].split(",")[0] in line
    assert "--cpus INTEGER" in out


def test_profile_keys_stay_flat_and_round_trip(tmp_path):
    path = tmp_path / "profiles.yaml"
    resources = JobResources(partition="gpu", time="90", gres="gpu:1", gpus="a100:1", cpus=8,
                             mem="32G", account="lab", qos="high")
    save_profile(Profile(name="p", host="h", resources=resources), path)
    text = path.read_text()
    for name in RESOURCE_FIELDS:
        assert f"\n    {name}: " in text  # flat under the profile, as before
    assert "resources" not in text and "resources" not in PROFILE_KEYS
    profile = get_profile("p", path)
    assert profile.resources.time == "01:30:00" and profile.resources.cpus == 8
    assert profile.resources == JobResources(**{**resources.to_dict(), "time": "01:30:00"})


def test_sbatch_lines_take_overrides_over_the_profile():
    p = Profile(name="p", host="h", resources=JobResources(partition="cpu", cpus=2, qos="q"))
    lines = sbatch_lines(p, JobResources(partition="gpu", mem="4G"))
    assert lines == ["--partition=gpu", "--cpus-per-task=2", "--mem=4G", "--qos=q"]
    assert sbatch_lines(p) == ["--partition=cpu", "--cpus-per-task=2", "--qos=q"]


@pytest.mark.parametrize("overrides,names", [
    (JobResources(cpus=0), ["--cpus", "positive", "0"]),
    (JobResources(cpus=-3), ["--cpus", "-3"]),
    (JobResources(time="soon"), ["--time", "'soon'"]),
    (JobResources(gres="gpu 1"), ["--gres", "'gpu 1'"]),
])
def test_bad_override_names_the_option(overrides, names):
    from hpc_dl4mic.errors import InputError

    with pytest.raises(InputError) as info:
        sbatch_lines(Profile(name="p", host="h"), overrides)
    assert all(n in str(info.value) for n in names), str(info.value)


def test_bad_profile_value_names_the_profile_key():
    from hpc_dl4mic.errors import InputError

    with pytest.raises(InputError, match="profile p: mem '4 G'"):
        sbatch_lines(Profile(name="p", host="h", resources=JobResources(mem="4 G")))


def test_submit_cpus_0_is_one_line_exit_2(env, tmp_path, monkeypatch):
    import hpc_dl4mic.sessions.launch as launch

    monkeypatch.setattr(launch, "open_host", lambda *a, **kw: pytest.fail("connected"))
    check(Case("cpus-0", ["submit", T, "--profile", "local-cluster", "--cpus", "0"],
               ["--cpus", "0"], env=env), cwd=tmp_path)


@pytest.mark.parametrize("name", RESOURCE_FIELDS)
def test_local_refuses_each_resource_option(name, env, tmp_path):
    value = "2" if RESOURCE_SPECS[name].kind is int else "01:00:00" if name == "time" else "x"
    check(Case(f"local-{name}", ["submit", T, "--local", f"--{name}", value],
               [f"--{name}", "--local"], env=env), cwd=tmp_path)
