"""Every external command goes through a Runner: argv lists, never a shell string."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .errors import CommandError


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
