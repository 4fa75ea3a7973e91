"""The click CLI: every command has --help, data commands have --json, errors are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from seeddata import COLAB_NOTEBOOKS, REQUIREMENTS

from hpc_dl4mic import __version__
from hpc_dl4mic.cli import main

BAD = Path(__file__).resolve().parent.parent / "data" / "bad_configs"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def all_commands(group=main, prefix=()):
    import click

    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, (*prefix, name))


def test_version_flag_prints_the_version():
    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


@pytest.mark.parametrize("command", list(all_commands()), ids=" ".join)
def test_every_command_has_help(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_list_prints_all_notebooks():
    result = run("list")
    assert result.exit_code == 0
    assert "CARE_2D_DL4Mic" in result.output
    assert len(result.output.strip().splitlines()) == 33


def test_list_json():
    data = json.loads(run("list", "--json").output)
    assert len(data) == 32
    assert {"name", "group", "python_version"} <= set(data[0])


def test_show_json_has_normalised_values():
    data = json.loads(run("show", "diffusion", "--json").output)
    assert data["name"] == "Diffusion_SMLM_DL4Mic"
    assert data["notebook_version"] == "1.12"
    assert data["sections_to_remove"] == ["1.1.", "2."]


def test_show_text():
    result = run("show", "care_2d")
    assert result.exit_code == 0
    assert "sections_to_remove:" in result.output


def test_unknown_name_exits_2_with_one_line():
    result = run("show", "nope-not-here")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "nope-not-here" in result.stderr


def test_bad_config_exits_2_with_one_line_and_no_traceback():
    result = run("show", str(BAD / "sections_bad_token.yaml"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "sections_to_remove" in result.stderr
    assert "Traceback" not in result.output


def test_render_writes_both_recipes_and_copies_local_inputs(tmp_path):
    out = tmp_path / "ctx"
    result = run("render", "CARE_2D_DL4Mic", "-o", str(out),
                 "--notebook", str(COLAB_NOTEBOOKS / "CARE_2D_ZeroCostDL4Mic.ipynb"),
                 "--requirements", str(REQUIREMENTS / "CARE_2D_requirements_simple.txt"))
    assert result.exit_code == 0, result.output
    assert (out / "CARE_2D_DL4Mic.def").is_file()
    assert (out / "Dockerfile").is_file()
    assert (out / "requirements.txt").is_file()
    assert list((out / "notebooks").glob("*.ipynb"))


def test_render_apptainer_only(tmp_path):
    result = run("render", "CARE_2D_DL4Mic", "--apptainer", "-o", str(tmp_path))
    assert result.exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["CARE_2D_DL4Mic.def"]


def test_render_with_bad_input_writes_nothing(tmp_path):
    out = tmp_path / "ctx"
    result = run("render", "CARE_2D_DL4Mic", "-o", str(out), "--base", "debootstrap:bookworm")
    assert result.exit_code == 2
    assert "--system-python" in result.stderr
    assert not out.exists()


def test_render_missing_notebook_file_is_a_usage_error(tmp_path):
    result = run("render", "CARE_2D_DL4Mic", "-o", str(tmp_path / "o"),
                 "--notebook", str(tmp_path / "missing.ipynb"))
    assert result.exit_code == 2


def _env(tmp_path) -> dict:
    return {"XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_STATE_HOME": str(tmp_path / "state")}


def test_profile_list_shows_good_profiles_and_warns_once_per_broken_one(tmp_path):
    path = tmp_path / "profiles.yaml"
    path.write_text("profiles:\n  bad:\n    host: h\n    port: 0\n  good:\n    host: g\n")
    result = CliRunner().invoke(main, ["profile", "list", "--profile-file", str(path)],
                                env=_env(tmp_path), catch_exceptions=False)
    assert result.exit_code == 0
    assert "good" in result.stdout and "bad" not in result.stdout
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and "profiles.bad.port" in warnings[0]


def test_profile_add_then_remove(tmp_path):
    path = tmp_path / "profiles.yaml"
    invoke = lambda *a: CliRunner().invoke(main, list(a), env=_env(tmp_path),  # noqa: E731
                                           catch_exceptions=False)
    result = invoke("profile", "add", "p", "--host", "h", "--time", "01:30", "--node-internet",
                    "--known-hosts", "~/kh", "--profile-file", str(path))
    assert result.exit_code == 0, result.stderr
    shown = json.loads(invoke("profile", "show", "p", "--json", "--profile-file",
                              str(path)).stdout)
    assert (shown["time"], shown["node_internet"], shown["known_hosts"]) == ("01:30:00", True,
                                                                             "~/kh")
    assert invoke("profile", "remove", "p", "--profile-file", str(path)).exit_code == 0
    assert "p " not in invoke("profile", "list", "--profile-file", str(path)).stdout


def test_profile_file_with_unquoted_time_submits_as_written(tmp_path):
    path = tmp_path / "profiles.yaml"
    path.write_text("profiles:\n  p:\n    host: h\n    time: 4:00:00\n")
    result = CliRunner().invoke(main, ["profile", "show", "p", "--profile-file", str(path)],
                                env=_env(tmp_path), catch_exceptions=False)
    assert "time:          04:00:00" in result.stdout


def _fake_cache(tmp_path) -> Path:
    from hpc_dl4mic.images.cache import ImageCache, ImageRecord

    cache = ImageCache(tmp_path / "cache")
    for name, key in (("A", "a" * 64), ("A_much_longer_notebook_name_DL4Mic", "b" * 64)):
        built = cache.new_tmp_dir("x") / "image.sif"
        built.write_bytes(b"SIF" * 1000)
        cache.add(built, ImageRecord(name=name, key=key, sha256="0" * 64,
                                     size=built.stat().st_size, created=1.0))
    return cache.directory


def test_cache_list_has_a_header_and_aligned_columns(tmp_path):
    result = run("cache", "list", "--cache", str(_fake_cache(tmp_path)))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KEY", "SIZE", "CREATED", "VERSION"]
    column = lines[0].index("KEY")
    assert {line[column:column + 4] for line in lines[1:]} == {"aaaa", "bbbb"}


def test_cache_prune_with_nothing_to_prune_says_so(tmp_path):
    for extra in ((), ("--dry-run",)):
        result = run("cache", "prune", "--cache", str(_fake_cache(tmp_path)), *extra)
        assert result.exit_code == 0
        assert "nothing to prune" in result.stderr
