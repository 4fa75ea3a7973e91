"""Bad-input catalogue: profiles, walltimes, the profiles file, YAML syntax, cache folders.

Each case: one stderr line naming the culprit, exit 2, no traceback, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
from badinput import Case, check

BAD_CONFIGS = Path(__file__).resolve().parent.parent / "data" / "bad_configs"


def cases(tmp: Path) -> list[Case]:
    env = {"XDG_CONFIG_HOME": str(tmp / "config"), "XDG_STATE_HOME": str(tmp / "state"),
           "XDG_CACHE_HOME": str(tmp / "cache"), "HPC_DL4MIC_CACHE": None}
    new = str(tmp / "new.yaml")
    good = str(tmp / "good.yaml")
    broken = str(tmp / "broken.yaml")
    sexagesimal = str(tmp / "sexagesimal.yaml")
    malformed = str(tmp / "malformed.yaml")
    missing = str(tmp / "missing.yaml")
    return [
        # 13: a named profiles file must exist
        Case("submit-missing-profile-file",
             ["submit", "U-Net_2D_DL4Mic", "--profile", "p", "--profile-file", missing],
             [missing, "no such profiles file"], env=env),
        Case("profile-list-missing-profile-file",
             ["profile", "list", "--profile-file", missing], [missing], env=env),
        Case("profile-show-missing-profile-file",
             ["profile", "show", "local-cluster", "--profile-file", missing], [missing],
             env=env),
        Case("build-on-missing-profile-file",
             ["build", "U-Net_2D_DL4Mic", "--on", "p", "--profile-file", missing],
             [missing], env=env),
        # 12: profile add validates before saving (the file is not created)
        Case("profile-add-port-0", ["profile", "add", "p", "--host", "h", "--port", "0",
                                    "--profile-file", new],
             ["profiles.p.port", "positive"], env=env, absent=[new]),
        Case("profile-add-port-too-big", ["profile", "add", "p", "--host", "h", "--port",
                                          "70000", "--profile-file", new],
             ["profiles.p.port", "65535"], env=env, absent=[new]),
        Case("profile-add-localhost", ["profile", "add", "localhost", "--host", "h",
                                       "--profile-file", new],
             ["'localhost'", "built-in"], env=env, absent=[new]),
        Case("profile-add-local-cluster", ["profile", "add", "local-cluster", "--host", "h",
                                           "--profile-file", new],
             ["'local-cluster'", "built-in"], env=env, absent=[new]),
        Case("profile-add-cpus-0", ["profile", "add", "p", "--host", "h", "--cpus", "0",
                                    "--profile-file", new],
             ["profiles.p.cpus", "positive", "0"], env=env, absent=[new]),
        Case("profile-add-name-with-space", ["profile", "add", "a b", "--host", "h",
                                             "--profile-file", new],
             ["'a b'", "letters, digits"], env=env, absent=[new]),
        Case("profile-add-name-starting-with-dot", ["profile", "add", ".p", "--host", "h",
                                                    "--profile-file", new],
             ["'.p'"], env=env, absent=[new]),
        # 1: walltimes
        Case("profile-add-time-99-99", ["profile", "add", "p", "--host", "h", "--time",
                                        "99:99", "--profile-file", new],
             ["profiles.p.time", "'99:99'", "minutes must be below 60"], env=env,
             absent=[new]),
        Case("profile-add-time-seconds-60", ["profile", "add", "p", "--host", "h", "--time",
                                             "1:00:60", "--profile-file", new],
             ["profiles.p.time", "seconds must be below 60"], env=env, absent=[new]),
        Case("profile-add-time-words", ["profile", "add", "p", "--host", "h", "--time",
                                        "two hours", "--profile-file", new],
             ["profiles.p.time", "[D-]HH:MM:SS"], env=env, absent=[new]),
        # 12: a broken entry is its own error, the others still work
        Case("profile-show-broken-entry", ["profile", "show", "bad", "--profile-file", broken],
             [broken, "profiles.bad.port"], env=env),
        Case("profile-remove-unknown", ["profile", "remove", "nope", "--profile-file", good],
             [good, "'nope'"], env=env),
        Case("profile-remove-builtin", ["profile", "remove", "localhost",
                                        "--profile-file", good],
             ["'localhost'", "built-in"], env=env),
        Case("profile-remove-builtin-new-name", ["profile", "remove", "local-cluster",
                                                 "--profile-file", good],
             ["'local-cluster'", "built-in"], env=env),
        # 2: a bad profile value names the file and profiles.NAME.KEY, not --time
        Case("profile-show-bad-time-in-file", ["profile", "show", "p", "--profile-file",
                                               sexagesimal],
             [sexagesimal, "profiles.p.time", "'4:75'"], env=env),
        # 15: malformed YAML names file:line:column
        Case("profile-list-malformed-yaml", ["profile", "list", "--profile-file", malformed],
             [f"{malformed}:3:12", "not valid YAML", "mapping values"], env=env),
        Case("show-malformed-config", ["show", str(BAD_CONFIGS / "not_yaml.yaml")],
             [f"{BAD_CONFIGS / 'not_yaml.yaml'}:3:1", "not valid YAML"], env=env),
        # 14: a missing cache folder
        Case("cache-list-missing", ["cache", "list", "--cache", str(tmp / "nonexistent")],
             ["--cache", str(tmp / "nonexistent"), "no such folder"], env=env),
        Case("cache-verify-missing", ["cache", "verify", "--cache", str(tmp / "nonexistent")],
             ["--cache", str(tmp / "nonexistent")], env=env),
        Case("cache-prune-missing", ["cache", "prune", "--dry-run", "--cache",
                                     str(tmp / "nonexistent")],
             ["--cache", str(tmp / "nonexistent")], env=env),
        Case("cache-list-missing-default", ["cache", "list"],
             [str(tmp / "cache" / "hpc-dl4mic" / "images"), "no such folder"], env=env),
    ]


def _write_files(tmp: Path) -> None:
    (tmp / "good.yaml").write_text("profiles:\n  g:\n    host: g\n")
    (tmp / "broken.yaml").write_text("profiles:\n  bad:\n    host: h\n    port: 0\n"
                                     "  good:\n    host: g\n")
    (tmp / "sexagesimal.yaml").write_text("profiles:\n  p:\n    host: h\n    time: 4:75\n")
    (tmp / "malformed.yaml").write_text("profiles:\n  p:\n    host: a: b\n")


IDS = [c.id for c in cases(Path("/x"))]


@pytest.mark.parametrize("index", range(len(IDS)), ids=IDS)
def test_bad_input_is_one_line_exit_2(tmp_path, index):
    _write_files(tmp_path)
    check(cases(tmp_path)[index], cwd=tmp_path)


def test_catalogue_is_large_enough():
    assert len(IDS) >= 12 and len(set(IDS)) == len(IDS)
