"""Bad-input catalogue: submit options (issue 8 items 5-9). Every case is refused before
anything is built or submitted: one line naming the option, exit 2, nothing left behind."""

from __future__ import annotations

import socket

import pytest
from badinput import Case, check

T = "StarDist_2D_DL4Mic"


@pytest.fixture
def env(tmp_path):
    return {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
            "XDG_CACHE_HOME": str(tmp_path / "cache")}


def cases(tmp_path) -> list[Case]:
    (tmp_path / "afile").write_text("x")
    (tmp_path / "images").mkdir()
    local_work = tmp_path / "state" / "hpc-dl4mic" / "local"
    return [
        Case("port-out-of-range", ["submit", T, "--profile", "local-cluster", "--port", "99999"],
             ["--port 99999"]),
        Case("port-negative", ["submit", T, "--profile", "local-cluster", "--port", "-1"],
             ["--port -1"]),
        Case("no-profile", ["submit", T], ["--profile", "--local"]),
        Case("local-with-profile", ["submit", T, "--local", "--profile", "local-cluster"],
             ["--profile", "--local"]),
        Case("local-with-resources", ["submit", T, "--local", "--partition", "gpu", "--gres",
                                      "gpu:1"], ["--partition", "--gres", "--local"]),
        Case("local-with-port", ["submit", T, "--local", "--port", "8888"], ["--port"]),
        Case("local-upload-missing", ["submit", T, "--local", "--upload",
                                      str(tmp_path / "nope")], ["--upload", "not a local folder"],
             absent=[local_work / "sessions"]),
        Case("local-data-is-a-file", ["submit", T, "--local", "--data", "afile"],
             ["--data", f"{tmp_path}/afile", "not a folder"], absent=[local_work / "sessions"]),
        Case("local-results-cannot-be-made", ["submit", T, "--local", "--results",
                                              "/proc/forbidden"],
             ["--results /proc/forbidden", "cannot be created"],
             absent=[local_work / "sessions", "/proc/forbidden"]),
        Case("local-data-under-a-file", ["submit", T, "--local", "--data", "afile/sub"],
             ["--data", "cannot be created"], absent=[local_work / "sessions"]),
        Case("upload-missing", ["submit", T, "--profile", "local-cluster", "--upload",
                                str(tmp_path / "nope")], ["--upload", "not a local folder"]),
        Case("upload-dest-escapes", ["submit", T, "--profile", "local-cluster", "--upload",
                                     f"{tmp_path / 'images'}:../x"], ["--upload", "DEST"]),
        Case("bad-time", ["submit", T, "--profile", "local-cluster", "--time", "soon"], ["--time"]),
        Case("bad-partition-chars", ["submit", T, "--profile", "local-cluster", "--partition",
                                     "gpu;rm -rf ~"], ["--partition"]),
    ]


CASE_IDS = ["port-out-of-range", "port-negative", "no-profile", "local-with-profile",
            "local-with-resources", "local-with-port", "local-upload-missing",
            "local-data-is-a-file", "local-results-cannot-be-made", "local-data-under-a-file",
            "upload-missing", "upload-dest-escapes", "bad-time", "bad-partition-chars"]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_bad_submit_input_is_one_line_exit_2_before_anything_runs(case_id, tmp_path, env,
                                                                   monkeypatch):
    import hpc_dl4mic.sessions.launch as launch

    def no_connection(*a, **kw):  # cases that need no cluster must not reach one
        if case_id.startswith("local-"):
            return real(*a, **kw)
        raise AssertionError("connected before refusing bad input")

    real = launch.open_host
    monkeypatch.setattr(launch, "open_host", no_connection)
    case = {c.id: c for c in cases(tmp_path)}[case_id]
    check(Case(case.id, case.argv, case.names, case.exit_code, env, case.absent), cwd=tmp_path)


def test_a_busy_port_is_refused_before_submitting(tmp_path, env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        check(Case("port-busy", ["submit", T, "--profile", "local-cluster", "--port", str(port)],
                   [f"port {port}", "already in use"], env=env), cwd=tmp_path)
