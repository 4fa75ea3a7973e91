"""Where the real seed data is, and which notebook belongs to which config (import from tests)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HPC_DL4MIC_SHARED", REPO.parent / "shared")).resolve()
SEED = SHARED / "seed-data"
SEED_CONFIGS = SEED / "dl4miceverywhere" / "notebooks"
COLAB_NOTEBOOKS = SEED / "zerocostdl4mic" / "Colab_notebooks"
REQUIREMENTS = SEED / "zerocostdl4mic" / "requirements_files"
CONFIGS = REPO / "configs"


def config_paths() -> list[Path]:
    """The 32 configuration.yaml files shipped in configs/ (sorted)."""
    return sorted(CONFIGS.glob("*/*/configuration.yaml"))


def _seed_file(config_path: Path, url_key: str, shared_dir: Path) -> Path | None:
    block = yaml.safe_load(config_path.read_text())["config"]["dl4miceverywhere"]
    base = block[url_key].rsplit("/", 1)[-1]
    bespoke = SEED_CONFIGS / config_path.parent.parent.name / config_path.parent.name / base
    for candidate in (shared_dir / base, bespoke):
        if candidate.is_file():
            return candidate
    return None


def seed_notebook(config_path: Path) -> Path | None:
    """The local copy of a config's notebook (by notebook_url's basename), or None."""
    return _seed_file(config_path, "notebook_url", COLAB_NOTEBOOKS)


def seed_requirements(config_path: Path) -> Path | None:
    """The local copy of a config's requirements file, or None."""
    return _seed_file(config_path, "requirements_url", REQUIREMENTS)


def configs_with_notebooks() -> list[tuple[Path, Path]]:
    """(config, notebook) pairs for the 29 configs whose notebook is in the seed data."""
    pairs = []
    for cfg in config_paths():
        nb = seed_notebook(cfg)
        if nb is not None:
            pairs.append((cfg, nb))
    return pairs


def interactive_signals() -> None:
    """preexec_fn for a child that a test interrupts with SIGINT: the default action, as in
    a terminal (shells started without job control may hand it down ignored)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
