"""One exception hierarchy; the CLI maps each class to an exit code and a one-line message."""

from __future__ import annotations


class HpcDl4micError(Exception):
    """Base of every error hpc-dl4mic raises on purpose. ``str(err)`` is the user-facing line."""

    exit_code = 1


class InputError(HpcDl4micError):
    """Bad input or usage: a file, key, value or name the user gave (exit code 2)."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration.yaml that cannot be used."""


class NotebookError(InputError):
    """A notebook that cannot be converted as asked."""


class ParameterError(InputError):
    """A notebook parameter value that does not fit its spec."""


class CommandError(HpcDl4micError):
    """An external command failed; carries its argv, exit status and stderr tail."""

    def __init__(self, message: str, *, argv: list[str] | None = None,
                 returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.argv = list(argv or [])
        self.returncode = returncode
        self.stderr = stderr


class BuildError(CommandError):
    """An image build failed."""


class RemoteError(HpcDl4micError):
    """An SSH / SLURM step on the cluster failed."""


class Interrupted(HpcDl4micError):
    """The user interrupted (Ctrl-C)."""

    exit_code = 130
