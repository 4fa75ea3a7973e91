"""Every external command goes through a Runner: argv lists, never a shell string."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from ..errors import CommandError, Interrupted


def tail(text: str, lines: int = 20) -> str:
    """Last ``lines`` lines of ``text`` (for error messages)."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    """Runs an argv somewhere (this machine, or a cluster over SSH)."""

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> Result: ...


class LocalRunner:
    """Runs commands on this machine with :mod:`subprocess` (list argv, no shell)."""

    def stream(self, argv: Sequence[str], *, on_line: Callable[[str], None] | None = None,
               check: bool = True, timeout: float | None = None,
               env: Mapping[str, str] | None = None, cwd: str | None = None) -> Result:
        """Run with stdout+stderr merged, handing each line to ``on_line`` as it comes.

        The child runs in its own session; on Ctrl-C, SIGTERM (see :func:`terminating`) or
        timeout it is terminated (then killed) before the exception propagates.
        """
        argv = [str(a) for a in argv]
        full_env = None if env is None else {**os.environ, **env}
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace",
                                    env=full_env, cwd=cwd, start_new_session=True, bufsize=1)
        except FileNotFoundError as exc:
            raise CommandError(f"command not found: {argv[0]}", argv=argv, returncode=127) from exc
        lines: list[str] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        timer = None
        if deadline is not None:
            timer = threading.Timer(timeout, _stop, args=(proc,))
            timer.daemon = True
            timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if on_line is not None:
                    on_line(line.rstrip("\n"))
            proc.wait()
        except BaseException:
            _stop(proc)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        output = "".join(lines)
        if deadline is not None and time.monotonic() >= deadline and proc.returncode != 0:
            raise CommandError(f"{argv[0]} timed out after {timeout:g} s:\n{tail(output)}",
                               argv=argv, returncode=proc.returncode, stderr=output)
        result = Result(argv, proc.returncode, output, output)
        if check and proc.returncode != 0:
            raise command_failed(result)
        return result

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> Result:
        argv = [str(a) for a in argv]
        full_env = None if env is None else {**os.environ, **env}
        try:
            proc = subprocess.run(argv, input=input, capture_output=True, text=True,
                                  timeout=timeout, env=full_env, cwd=cwd,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except FileNotFoundError as exc:
            raise CommandError(f"command not found: {argv[0]}", argv=argv, returncode=127) from exc
        except subprocess.TimeoutExpired as exc:
            raise CommandError(f"{argv[0]} timed out after {timeout:g} s", argv=argv) from exc
        result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise command_failed(result)
        return result


def command_failed(result: Result) -> CommandError:
    """The error for a failed command, with the tail of its stderr (or stdout)."""
    out = tail(result.stderr or result.stdout)
    msg = f"{result.argv[0]} exited with status {result.returncode}"
    if out:
        msg += ":\n" + out
    return CommandError(msg, argv=result.argv, returncode=result.returncode, stderr=result.stderr)


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """TERM the child's process group, KILL it after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@contextmanager
def terminating() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Interrupted` (so cleanups run) instead of
    killing the process outright. A no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        raise Interrupted("terminated")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
