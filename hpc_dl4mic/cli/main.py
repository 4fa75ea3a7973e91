"""Command line: the ``hpc-dl4mic`` group (global -v, one-line errors) and its commands.

The commands live in one module per group (catalogue, images, profiles, sessions): each
parses options, calls one library function and prints. Only click (and the light
:mod:`hpc_dl4mic.jobs.resources`) is imported at module level so ``--help`` stays fast.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from . import batch, catalogue, gpu, images, profiles, sessions
from .common import EXIT_INTERRUPTED, EXIT_USAGE

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "Group", "main"]


def one_line(message: str) -> str:
    """``message`` on one line: a line break or other control character it quotes (a path or
    value the user gave) is shown escaped, as ``\\n``."""
    import re

    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", lambda m: repr(m.group())[1:-1],
                  message.strip())


class Group(click.Group):
    """Turns every error into one line on stderr and the documented exit code.

    The project's own errors carry their exit code; any other exception is a bug or an
    unforeseen failure: one line plus a hint, exit 1, and the traceback only with ``-v``.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault("hpc_dl4mic.argv", list(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        from ..errors import HpcDl4micError

        try:
            return super().invoke(ctx)
        except HpcDl4micError as exc:
            click.echo(f"hpc-dl4mic: error: {one_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except (KeyboardInterrupt, click.Abort):
            click.echo("hpc-dl4mic: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.UsageError as exc:  # click's own checks (paths, choices): one line too
            where = f"; see `{exc.ctx.command_path} --help`" if exc.ctx else ""
            click.echo(f"hpc-dl4mic: error: {one_line(exc.format_message())}{where}", err=True)
            sys.exit(EXIT_USAGE)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place unexpected errors are shown
            argv = ctx.meta.get("hpc_dl4mic.argv", [])
            if "-v" in argv or "--verbose" in argv:
                import traceback

                traceback.print_exc()
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(f"hpc-dl4mic: error: {type(exc).__name__}"
                       f"{': ' + detail if detail else ''} (run with -v for details)", err=True)
            sys.exit(1)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="hpc-dl4mic")
@click.option("-v", "--verbose", "debug", is_flag=True,
              help="Show the traceback of an unexpected error (also accepted after a command "
                   "that has -v).")
def main(debug: bool) -> None:
    """Run DL4MicEverywhere / ZeroCostDL4Mic notebooks on HPC clusters with Apptainer and SLURM.

    TARGET is a notebook name from `hpc-dl4mic list` (case-insensitive; a unique prefix is
    enough) or a path to a configuration.yaml.
    """


for _module in (catalogue, images, profiles, sessions, batch, gpu):
    for _command in _module.COMMANDS:
        main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    main()
