"""Renamed names (issue 9): the built-in profile, sbatch helpers, download."""

from __future__ import annotations

from click.testing import CliRunner

from hpc_dl4mic.cli import main
from hpc_dl4mic.remote.profiles import BUILTIN_NAME, get_profile, load_profiles


def test_builtin_profile_is_local_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert BUILTIN_NAME == "local-cluster" and list(load_profiles()) == ["local-cluster"]


def test_localhost_is_a_deprecated_alias_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    warnings: list[str] = []
    profile = get_profile("localhost", warn=warnings.append)
    assert profile.name == "local-cluster" and profile.builtin
    assert len(warnings) == 1 and "'localhost'" in warnings[0] and "'local-cluster'" in warnings[0]
    assert get_profile("local-cluster", warn=warnings.append).name == "local-cluster"
    assert len(warnings) == 1


def test_the_alias_warning_is_one_line_on_stderr(tmp_path):
    result = CliRunner().invoke(main, ["profile", "show", "localhost"],
                                env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.exit_code == 0
    assert result.stderr.strip().splitlines() == [
        "hpc-dl4mic: warning: profile 'localhost' is a deprecated name of the built-in "
        "profile; use 'local-cluster'"]
    assert "name:          local-cluster" in result.stdout


def test_a_file_profile_named_localhost_still_wins_without_a_warning(tmp_path):
    path = tmp_path / "profiles.yaml"
    path.write_text("profiles:\n  localhost:\n    host: old\n")
    warnings: list[str] = []
    assert get_profile("localhost", path, warn=warnings.append).host == "old"
    assert not warnings


def test_new_function_names():
    from hpc_dl4mic.catalogue import sources
    from hpc_dl4mic.jobs import slurm

    assert callable(slurm.sbatch) and callable(slurm.sbatch_text)
    assert not hasattr(slurm, "submit") and not hasattr(slurm, "submit_text")
    assert hasattr(slurm.SlurmScheduler, "submit") and hasattr(slurm.SlurmScheduler,
                                                               "submit_text")
    assert callable(sources.download) and not hasattr(sources, "fetch")
