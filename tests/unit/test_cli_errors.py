"""Unexpected exceptions become one line (and a traceback only with -v)."""

from __future__ import annotations

from click.testing import CliRunner

from hpc_dl4mic import cli


def _boom(*args, **kwargs):
    raise OverflowError("bind(): port must be 0-65535.")


def test_unexpected_exception_is_one_line_with_a_hint(monkeypatch):
    monkeypatch.setattr("hpc_dl4mic.catalogue.config.resolve_target", _boom)
    result = CliRunner().invoke(cli.main, ["show", "x"], catch_exceptions=False)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == ["hpc-dl4mic: error: OverflowError: bind(): port must be 0-65535. "
                     "(run with -v for details)"]


def test_verbose_shows_the_traceback(monkeypatch):
    monkeypatch.setattr("hpc_dl4mic.catalogue.config.resolve_target", _boom)
    result = CliRunner().invoke(cli.main, ["show", "x", "-v"], catch_exceptions=False)
    assert result.exit_code == 2  # `show` has no -v: a usage error, never a traceback
    result = CliRunner().invoke(cli.main, ["-v", "show", "x"], catch_exceptions=False)
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
