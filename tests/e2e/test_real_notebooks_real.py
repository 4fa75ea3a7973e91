"""The real ZeroCostDL4Mic notebooks, headless, on the local cluster: StarDist 2D
(TensorFlow, python 3.11 on the bookworm base) and DRMIME 2D (PyTorch, python 3.9 on the
bullseye base), each built with its REAL requirements file, trained on small synthetic data
through `hpc-dl4mic batch` (SLURM, apptainer, papermill), with the predictions fetched and
checked. Images are cached by key in the cluster's cache across runs on one machine: the
first run builds them (minutes, several GB), later runs only run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clitools import ca_args, cli, ended, wait_for
from realnotebooks import DRMIME_2D, STARDIST_2D, Recipe
from synthdata import read_tiff_size

pytestmark = pytest.mark.e2e

BUILD_TIMEOUT = 2400  # a first build of a real image on a fresh machine: pip + squashfs
RUN_TIMEOUT = 1200


@pytest.mark.parametrize("recipe", [STARDIST_2D, DRMIME_2D], ids=lambda r: r.config)
def test_a_real_notebook_trains_and_predicts_headless_through_batch(
        recipe: Recipe, request, cluster, cluster_profile, state_env, tmp_path):
    base = request.getfixturevalue("base_sif" if recipe.suite == "bookworm"
                                   else "bullseye_base_sif")
    data = tmp_path / "data"
    recipe.make_data(data)
    out = cli(state_env, "batch", recipe.config, "--profile", "testcluster",
              "--profile-file", str(cluster_profile), "--base", f"localimage:{base}",
              *ca_args(), "--upload", f"{data}:{recipe.upload}", *recipe.batch_args(),
              "--time", "30", timeout=BUILD_TIMEOUT)
    assert out.returncode == 0, out.stderr[-4000:]
    run_id = out.stdout.strip().splitlines()[-1]
    tasks = wait_for(state_env, run_id, ended, timeout=RUN_TIMEOUT)
    dest = tmp_path / "fetched"
    fetched = cli(state_env, "batch", "fetch", run_id, "--dest", str(dest))
    assert fetched.returncode == 0, fetched.stderr
    task = dest / "tasks" / "0"
    assert tasks[0]["state"] == "completed", (tasks, _log_tail(task))

    predictions = sorted(task.glob(recipe.predictions))
    assert predictions, f"no {recipe.predictions} in {sorted(p.name for p in task.rglob('*'))}"
    for path in predictions:
        pages, width, height = read_tiff_size(path)
        assert pages >= 1 and width > 0 and height > 0 and path.stat().st_size > 1024, path
    executed = json.loads((task / "executed.ipynb").read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors == []
    # what the notebook was given, not its defaults, is what ran
    given = json.loads((task / "params.json").read_text()) if (task / "params.json").is_file() \
        else tasks[0]["params"]
    assert given["model_name"] == recipe.params["model_name"]


def _log_tail(task: Path) -> str:
    logs = sorted(task.glob("*.log")) + sorted(task.parent.parent.glob("logs/*"))
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs[:2])
