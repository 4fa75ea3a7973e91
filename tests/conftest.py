"""Shared fixtures for both tiers (data helpers live in seeddata.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from seeddata import REPO, SEED, SHARED


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SEED.is_dir():
        pytest.fail(f"seed data not found at {SEED} (set HPC_DL4MIC_SHARED)")
    return SHARED


GOLDEN = REPO / "tests" / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--regen-golden", action="store_true", default=False,
                     help="rewrite the golden files under tests/golden/ from the current output")


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """Compare text with tests/golden/NAME; --regen-golden rewrites it (never done implicitly)."""
    regen = request.config.getoption("--regen-golden")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if regen:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        if not path.is_file():
            pytest.fail(f"golden file {path} is missing; run pytest --regen-golden to create it")
        assert text == path.read_text(), f"{name} differs from its golden file (--regen-golden)"

    return check


def _hypothesis_profile() -> None:
    """CI runs the property tests derandomized: the same examples every run, so a red CI
    is never a roll of the dice (a local run explores new ones)."""
    import os

    try:
        from hypothesis import settings
    except ImportError:
        return
    settings.register_profile("ci", derandomize=True, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")


_hypothesis_profile()
