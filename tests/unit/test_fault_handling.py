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
