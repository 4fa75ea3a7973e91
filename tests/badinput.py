"""The bad-input catalogue's checker: every case is one line on stderr naming the culprit,
the documented exit code, no traceback, and no output file left behind.

Each area keeps its cases in ``tests/unit/test_bad_input_<area>.py`` as a list of
:class:`Case` and calls :func:`check` on each (see those files)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv`` after ``hpc-dl4mic``; ``names`` must all appear in the line."""

    id: str
    argv: Sequence[str]
    names: Sequence[str]
    exit_code: int = 2
    env: dict = field(default_factory=dict)
    absent: Sequence[str] = ()  # paths that must not exist afterwards (no half-written output)


def check(case: Case, *, cwd: Path | None = None) -> str:
    """Run ``case`` through the CLI; return the error line."""
    import os

    from hpc_dl4mic.cli import main

    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, list(case.argv), env=case.env or None,
                                    catch_exceptions=False)
    finally:
        os.chdir(old)
    err = result.stderr
    assert result.exit_code == case.exit_code, (case.id, result.exit_code, err, result.stdout)
    assert "Traceback" not in err + result.stdout, (case.id, err)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, (case.id, err)
    for name in case.names:
        assert name in lines[0], (case.id, name, lines[0])
    for path in case.absent:
        assert not Path(path).exists(), (case.id, path)
    return lines[0]
