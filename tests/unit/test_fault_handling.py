"""Faults handled without tracebacks: a download's read-ahead thread dying with the
connection, corrupt session records, connect timeouts, concurrent builds of one image."""

from __future__ import annotations

import threading

import pytest

from hpc_dl4mic.errors import InputError
from hpc_dl4mic.remote import sftpops


def _thread_raising_in(filename: str) -> list[str]:
    """Run a thread whose failing frame is ``_prefetch_thread`` of ``filename``; what the
    previous excepthook saw."""
    seen: list[str] = []
    namespace: dict = {}
    exec(compile("def _prefetch_thread():\n    raise EOFError('connection lost')\n",
                 filename, "exec"), namespace)
    previous = threading.excepthook
    threading.excepthook = lambda args: seen.append(str(args.exc_value))
    sftpops._hook_installed = False
    try:
        sftpops.quiet_prefetch_threads()
        thread = threading.Thread(target=namespace["_prefetch_thread"])
        thread.start()
        thread.join()
    finally:
        threading.excepthook = previous
        sftpops._hook_installed = False
    return seen


def test_paramiko_prefetch_thread_dying_with_the_connection_prints_nothing():
    assert _thread_raising_in("/venv/site-packages/paramiko/sftp_file.py") == []


def test_other_threads_failures_still_reach_the_previous_hook():
    assert _thread_raising_in("/somewhere/else/mine.py") == ["connection lost"]


# -- connect timeouts ----------------------------------------------------------------------

def test_connect_timeout_comes_from_the_profile_then_ssh_config(tmp_path, monkeypatch):
    from hpc_dl4mic.remote.profiles import get_profile

    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    (ssh / "config").write_text("Host slow\n    HostName 10.255.255.1\n    ConnectTimeout 7\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("profiles:\n  a: {host: slow}\n  b: {host: slow, connect_timeout: 2}\n"
                        "  c: {host: other}\n")
    assert get_profile("a", profiles).ssh_target().connect_timeout == 7.0
    assert get_profile("b", profiles).ssh_target().connect_timeout == 2.0
    assert get_profile("c", profiles).ssh_target().connect_timeout is None


@pytest.mark.parametrize("value", [0, -1, "soon", True])
def test_a_bad_connect_timeout_in_a_profile_is_a_one_line_error(tmp_path, value):
    from hpc_dl4mic.remote.profiles import get_profile

    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(f"profiles:\n  a: {{host: h, connect_timeout: {value}}}\n")
    with pytest.raises(InputError, match=r"profiles\.a\.connect_timeout: expected a positive"):
        get_profile("a", profiles)


def test_ssh_host_uses_the_targets_connect_timeout(monkeypatch):
    from hpc_dl4mic.remote import connection
    from hpc_dl4mic.remote.target import SshTarget

    seen = []
    monkeypatch.setattr(connection, "open_chain", lambda target, **kw: seen.append(
        kw["timeout"]) or [object()])
    target = SshTarget(alias="h", hostname="h", user="u", connect_timeout=3.0)
    connection.SshHost.open(target, kbd_handler=lambda *a: [])
    connection.SshHost.open(SshTarget(alias="h", hostname="h", user="u"),
                            kbd_handler=lambda *a: [])
    connection.SshHost.open(target, kbd_handler=lambda *a: [], connect_timeout=9)
    assert seen == [3.0, connection.DEFAULT_CONNECT_TIMEOUT, 9]


def test_a_port_that_accepts_but_never_speaks_ssh_is_a_clear_error_within_the_timeout():
    import socket
    import time

    from hpc_dl4mic.errors import RemoteError
    from hpc_dl4mic.remote.connection import SshHost
    from hpc_dl4mic.remote.target import SshTarget

    with socket.socket() as silent:  # the kernel accepts into the backlog; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(RemoteError, match=r"u@127\.0\.0\.1:\d+: no SSH server answered "
                                              r"within 1 s"):
            SshHost.open(SshTarget(alias="x", hostname="127.0.0.1", port=port, user="u",
                                   connect_timeout=1.0), kbd_handler=lambda *a: [])
        assert time.monotonic() - started < 5


# -- session records -----------------------------------------------------------------------

def _record(ident: str, created: float):
    from hpc_dl4mic.sessions.records import Session

    return Session(id=ident, profile="p", job_id=f"{int(created)}", config="C", image="i.sif",
                   session_dir=f"/w/sessions/{ident}", results_dir="/r", data_dir="/d",
                   created=created, state="COMPLETED")


def _cli(tmp_path, *args: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    return subprocess.run([sys.executable, "-m", "hpc_dl4mic.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


BROKEN_RECORDS = {
    "garbage": "\x00\x13not json at all {{{",
    "truncated": '{"id": "truncated", "profile": "p", "job_id": "1", "con',
    "array": "[1, 2, 3]",
    "missing": '{"id": "missing"}',
    "wrongtype": None,  # a whole record whose `created` is a string
}


def test_status_names_each_broken_record_in_one_line_and_lists_the_others(tmp_path,
                                                                          monkeypatch):
    import json

    from hpc_dl4mic.sessions.records import save_session, sessions_dir

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    save_session(_record("good-1", 100.0))
    save_session(_record("good-2", 200.0))
    folder = sessions_dir()
    for name, text in BROKEN_RECORDS.items():
        if text is None:
            data = _record(name, 1.0).to_dict()
            data["created"] = "yesterday"
            text = json.dumps(data)
        (folder / f"{name}.json").write_text(text)
    out = _cli(tmp_path, "status", "--all", "--json")
    assert out.returncode == 0, out.stderr
    assert [s["id"] for s in json.loads(out.stdout)] == ["good-2", "good-1"]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == len(BROKEN_RECORDS) and "Traceback" not in out.stderr
    for name in BROKEN_RECORDS:
        line = next(line for line in lines if f"{folder / name}.json" in line)
        assert line.startswith("hpc-dl4mic: session record ") and "is unusable" in line
    assert any("field 'created' has the wrong type" in line for line in lines)
    assert any("missing profile" in line for line in lines)
    table = _cli(tmp_path, "status", "--all")
    assert "good-1" in table.stdout and "good-2" in table.stdout


def test_a_command_on_a_session_whose_record_is_broken_names_the_record(tmp_path,
                                                                       monkeypatch):
    from hpc_dl4mic.sessions.records import sessions_dir

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (sessions_dir() / "C-20261203-101010-abcd.json").write_text("{garbage")
    for command in ("logs", "connect", "cancel", "fetch", "status"):
        out = _cli(tmp_path, command, "C-20261203-101010-abcd")
        assert out.returncode == 2, (command, out.stderr)
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
        assert f"session record {sessions_dir()}/C-20261203-101010-abcd.json is unusable: " \
               "not JSON" in out.stderr


def test_a_deleted_record_or_records_folder_is_a_plain_no_such_session(tmp_path, monkeypatch):
    import shutil

    from hpc_dl4mic.sessions.records import save_session, sessions_dir

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    save_session(_record("gone-1", 1.0))
    (sessions_dir() / "gone-1.json").unlink()
    out = _cli(tmp_path, "logs", "gone-1")
    assert out.returncode == 2 and "no session 'gone-1'; see `hpc-dl4mic status`" in out.stderr
    shutil.rmtree(sessions_dir())
    listed = _cli(tmp_path, "status", "--json")
    assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr


# -- two builds of one image into one cache -------------------------------------------------

def _publish(cache, name: str, key: str) -> None:
    from hpc_dl4mic.images.cache import ImageRecord

    sif = cache.sif_path(name, key)
    sif.write_bytes(b"SIF")
    cache.record_path(name, key).write_text(
        ImageRecord(name=name, key=key, sha256="0" * 64, size=3, created=1.0).to_json())


def test_a_second_build_of_one_image_waits_and_then_finds_it_cached(tmp_path):
    import time

    from hpc_dl4mic.catalogue.config import Base
    from hpc_dl4mic.images.build import BuildInputs, build
    from hpc_dl4mic.images.cache import ImageCache

    key = "b" * 64
    inputs = BuildInputs("Y_DL4Mic", "Bootstrap: scratch\n", {}, Base("debootstrap", "bookworm"),
                         key)
    cache = ImageCache(tmp_path / "cache")
    holding, release = threading.Event(), threading.Event()

    def first_build() -> None:
        with cache.build_lock(inputs.name, key):
            holding.set()
            release.wait(10)
            _publish(cache, inputs.name, key)

    class NoBuilder:
        fakeroot = True

        def __getattr__(self, name):
            raise AssertionError("the image was built already: nothing to build")

    said: list[str] = []
    first = threading.Thread(target=first_build)
    first.start()
    assert holding.wait(10)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    result = build(inputs, cache.host, cache, builder=NoBuilder(), progress=said.append)
    first.join(10)
    assert result.cached and result.path == cache.sif_path(inputs.name, key)
    assert time.monotonic() - started >= 0.4  # it waited for the first build
    assert said and said[0].startswith("waiting for another build of Y_DL4Mic-bbbbbbbbbbbbbbbb")
    assert list(cache.tmp_dir.iterdir()) == []  # the lock file went with its last holder


def test_the_build_lock_is_taken_again_after_its_holder_removed_the_file(tmp_path):
    from hpc_dl4mic.images.cache import ImageCache

    cache = ImageCache(tmp_path / "cache")
    order: list[str] = []
    entered = threading.Event()

    def holder() -> None:
        with cache.build_lock("Z", "c" * 64):
            entered.set()
            order.append("first in")
            threading.Event().wait(0.3)
            order.append("first out")

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait(10)
    for _ in range(2):  # the second one waited on a file the first removed
        with cache.build_lock("Z", "c" * 64):
            order.append("next in")
    thread.join(10)
    assert order == ["first in", "first out", "next in", "next in"]
    assert list(cache.tmp_dir.iterdir()) == []


# -- the token and the browser -------------------------------------------------------------

def test_the_browser_gets_a_private_redirect_page_not_the_url_with_the_token(tmp_path,
                                                                             monkeypatch):
    import stat
    import webbrowser

    from hpc_dl4mic.sessions.records import open_in_browser

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    url = "http://127.0.0.1:8765/lab?token=" + "ab" * 32
    page = open_in_browser(url)
    assert opened == [page.as_uri()] and "token" not in opened[0]
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert stat.S_IMODE(page.parent.stat().st_mode) == 0o700
    assert 'content="0;url=http://127.0.0.1:8765/lab?token=' + "ab" * 32 in page.read_text()


def test_a_port_that_closes_at_once_is_not_called_a_timeout():
    import socket

    from hpc_dl4mic.errors import RemoteError
    from hpc_dl4mic.remote.connection import SshHost
    from hpc_dl4mic.remote.target import SshTarget

    with socket.socket() as closing:
        closing.bind(("127.0.0.1", 0))
        closing.listen(4)
        port = closing.getsockname()[1]

        def close_each() -> None:
            conn, _ = closing.accept()
            conn.close()

        threading.Thread(target=close_each, daemon=True).start()
        with pytest.raises(RemoteError, match="the connection was closed before any SSH banner"):
            SshHost.open(SshTarget(alias="x", hostname="127.0.0.1", port=port, user="u",
                                   connect_timeout=5.0), kbd_handler=lambda *a: [])
