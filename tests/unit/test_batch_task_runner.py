"""The task runner (batch_task.py) run for real on the mini notebook, locally (no container)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from hpc_dl4mic.batch import task_runner
from hpc_dl4mic.notebooks.convert import convert_file

pytest.importorskip("papermill")

MINI = Path(__file__).resolve().parent.parent / "data" / "mini_zerocost.ipynb"


@pytest.fixture(scope="module")
def batch_nb(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("run")
    data = base / "data"
    data.mkdir()
    nb = base / "notebook.batch.ipynb"
    convert_file(MINI, nb, mode="batch", sections_to_remove="1.2.", data_dir=str(data),
                 results_dir="/results")
    return nb, base


def _run(nb: Path, base: Path, index: int, params: dict, timeout: float = 0) -> dict:
    manifest = base / f"params-{index}.jsonl"
    manifest.write_text(json.dumps({"index": index, "params": params}) + "\n")
    task_dir = base / "tasks" / str(index)
    argv = ["--notebook", str(nb), "--params", str(manifest), "--index", str(index),
            "--task-dir", str(task_dir)] + (["--timeout", str(timeout)] if timeout else [])
    umask = os.umask(0o022)
    try:
        code = task_runner.main(argv)  # sets the process umask, as it does in the job
    finally:
        os.umask(umask)
    status = json.loads((task_dir / "status.json").read_text())
    assert status["exit_code"] == code
    assert (task_dir / "executed.ipynb").is_file()  # saved whatever happened
    return status


def test_a_passing_task(batch_nb):
    nb, base = batch_nb
    status = _run(nb, base, 0, {"model_name": "m0", "model_path": str(base / "tasks" / "0"),
                                "number_of_epochs": 2})
    assert status["state"] == "completed" and status["error"] is None
    assert status["cells"] and status["cell"] == status["cells"] - 1
    assert status["end"] >= status["start"] and status["node"]
    summary = json.loads((base / "tasks" / "0" / "m0" / "training_summary.json").read_text())
    assert summary["number_of_epochs"] == 2


def test_a_failing_task_names_its_cell(batch_nb):
    nb, base = batch_nb
    # a path that cannot be created makes the training cell fail
    status = _run(nb, base, 1, {"model_name": "m1", "model_path": "/proc/no/such/place"})
    assert status["state"] == "failed" and status["exit_code"] == 1
    assert status["error"]["name"] in ("FileNotFoundError", "PermissionError", "OSError")
    executed = json.loads((base / "tasks" / "1" / "executed.ipynb").read_text())
    cell = executed["cells"][status["cell"]]
    assert "full_model_path" in "".join(cell["source"])
    assert status["error"]["cell_title"] == "Start training"
    assert any(o.get("output_type") == "error" for o in cell.get("outputs", []))


def test_signals_map_to_states():
    with pytest.raises(task_runner.Stopped) as info:
        task_runner.install_handlers(None)
        import os
        import signal

        os.kill(os.getpid(), signal.SIGUSR1)
    assert info.value.state == "timeout"
    import signal

    for sig in (signal.SIGUSR1, signal.SIGALRM, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler)


def test_the_runner_imports_only_the_stdlib_at_import_time():
    import ast

    tree = ast.parse(Path(task_runner.__file__).read_text())
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body
            if isinstance(n, ast.ImportFrom) and n.module}
    assert top <= set(sys.stdlib_module_names) | {"__future__"}


def test_a_task_stopped_before_papermill_saved_still_leaves_the_notebook(batch_nb, tmp_path):
    nb, _ = batch_nb
    output = tmp_path / "executed.ipynb"
    task_runner.note_stop(str(nb), str(output), "hpc-dl4mic: task stopped (cancelled): TERM")
    executed = json.loads(output.read_text())
    assert "cancelled" in executed["cells"][0]["source"]
    assert len(executed["cells"]) == len(json.loads(nb.read_text())["cells"]) + 1
    output.write_text('{"cells": [')  # cut while papermill was writing it
    task_runner.note_stop(str(nb), str(output), "stopped again")
    assert json.loads(output.read_text())["cells"][0]["source"] == "**stopped again**"
