"""Commands on an SSH transport: the quoted shell line of an argv, and running it on a
session channel (collected, or streamed line by line)."""

from __future__ import annotations

import re
import shlex
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import CommandError, RemoteError
from .runner import Result, command_failed

Lost = Callable[[str, "BaseException | None"], RemoteError]
"""``lost(what, exc)``: the RemoteError for a failure of the connection itself."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def remote_command(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                   cwd: str | None = None) -> str:
    """The shell line that runs ``argv`` literally on the remote side (every word quoted)."""
    argv = [str(a) for a in argv]
    if not argv:
        raise ValueError("empty argv")
    command = shlex.join(argv)
    if env:
        for key in env:
            if not _ENV_NAME.match(key):
                raise ValueError(f"bad environment variable name {key!r}")
        command = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + \
            " " + command
    if cwd:
        cwd = str(cwd)
        if cwd == "~":
            quoted = "~"
        elif cwd.startswith("~/"):
            quoted = "~/" + shlex.quote(cwd[2:])
        else:
            quoted = shlex.quote(cwd)
        command = f"cd {quoted} && {command}"
    return command


def run_command(transport: Any, argv: Sequence[str], *, where: str, lost: Lost,
                check: bool = True, input: str | None = None, timeout: float | None = None,
                env: Mapping[str, str] | None = None, cwd: str | None = None) -> Result:
    """Run ``argv`` on a session channel of ``transport`` (words quoted, no shell
    interpretation); ``where`` names the host in timeout messages."""
    import paramiko

    argv = [str(a) for a in argv]
    command = remote_command(argv, env=env, cwd=cwd)
    try:
        chan = transport.open_session(timeout=timeout or 30.0)
        chan.exec_command(command)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise lost(f"cannot start {argv[0]}", exc) from exc
    out: list[bytes] = []
    err: list[bytes] = []

    def pump(recv: Callable[[int], bytes], sink: list[bytes]) -> None:
        try:
            while data := recv(65536):
                sink.append(data)
        except (OSError, EOFError):
            pass

    def feed() -> None:
        try:
            if input:
                chan.sendall(input.encode())
            chan.shutdown_write()
        except (OSError, EOFError):
            pass  # the command exited without reading all of it

    threads = [threading.Thread(target=pump, args=(chan.recv, out), daemon=True),
               threading.Thread(target=pump, args=(chan.recv_stderr, err), daemon=True),
               threading.Thread(target=feed, daemon=True)]
    for t in threads:
        t.start()
    try:
        if not chan.status_event.wait(timeout):
            raise CommandError(f"{argv[0]} timed out after {timeout:g} s on {where}",
                               argv=argv)
        # Output precedes the exit status; a background child holding stdout open
        # must not hang us (OpenSSH's client would), so the wait is bounded.
        for t in threads[:2]:
            t.join(5.0)
    finally:
        chan.close()
        for t in threads:
            t.join(1.0)
    status = chan.exit_status
    if status == -1 and not transport.is_active():
        raise lost(f"{argv[0]} did not finish", None)
    result = Result(argv, status, b"".join(out).decode("utf-8", "replace"),
                    b"".join(err).decode("utf-8", "replace"))
    if check and status != 0:
        raise command_failed(result)
    return result


def stream_command(transport: Any, argv: Sequence[str], *, where: str, lost: Lost,
                   on_line: Callable[[str], None] | None = None, check: bool = True,
                   timeout: float | None = None, env: Mapping[str, str] | None = None,
                   cwd: str | None = None) -> Result:
    """Run ``argv`` with stdout+stderr merged, handing each line to ``on_line`` as it
    arrives (like :meth:`LocalRunner.stream`)."""
    import time

    import paramiko

    argv = [str(a) for a in argv]
    command = remote_command(argv, env=env, cwd=cwd)
    try:
        chan = transport.open_session(timeout=30.0)
        chan.set_combine_stderr(True)
        chan.exec_command(command)
        chan.shutdown_write()
        chan.settimeout(1.0)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise lost(f"cannot start {argv[0]}", exc) from exc
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks: list[bytes] = []
    pending = b""
    try:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise CommandError(f"{argv[0]} timed out after {timeout:g} s on {where}",
                                   argv=argv,
                                   stderr=b"".join(chunks).decode("utf-8", "replace"))
            try:
                data = chan.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            chunks.append(data)
            pending += data
            *lines, pending = pending.split(b"\n")
            if on_line is not None:
                for line in lines:
                    on_line(line.decode("utf-8", "replace"))
        if pending and on_line is not None:
            on_line(pending.decode("utf-8", "replace"))
        chan.status_event.wait(10.0)
    finally:
        chan.close()
    status = chan.exit_status
    if status == -1 and not transport.is_active():
        raise lost(f"{argv[0]} did not finish", None)
    output = b"".join(chunks).decode("utf-8", "replace")
    result = Result(argv, status, output, output)
    if check and status != 0:
        raise command_failed(result)
    return result
