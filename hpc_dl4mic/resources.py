"""Where the shipped data folders (configs, definitions, slurm_templates) are."""

from __future__ import annotations

from pathlib import Path


def data_dir(name: str) -> Path:
    """Path of a shipped data folder: from the installed package, else the source tree."""
    import importlib.util

    spec = importlib.util.find_spec(f"hpc_dl4mic.{name}")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / name
