"""A converted notebook executed for real by papermill + ipykernel (no cluster needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from hpc_dl4mic.notebooks.convert import convert_file, read_notebook
from hpc_dl4mic.notebooks.params import extract_params, validate_values

pytestmark = pytest.mark.e2e

papermill = pytest.importorskip("papermill")

MINI = Path(__file__).resolve().parent.parent / "data" / "mini_zerocost.ipynb"


def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    data, results, cwd = tmp_path / "data", tmp_path / "results", tmp_path / "cwd"
    for path in (data, results, cwd):
        path.mkdir()
    return data, results, cwd


def outputs_of(nb: nbformat.NotebookNode) -> str:
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append(out["text"])
            elif out.get("output_type") == "error":
                texts.append(f"ERROR {out['ename']}: {out['evalue']}")
    return "".join(texts)


def test_batch_notebook_runs_with_injected_parameters(tmp_path):
    data, results, cwd = folders(tmp_path)
    batch = tmp_path / "mini_batch.ipynb"
    convert_file(MINI, batch, mode="batch", sections_to_remove="1.2.", data_dir=str(data),
                 results_dir=str(results))
    # as `hpc-dl4mic ... -p NAME VALUE` would: strings checked and typed by the validator
    given = validate_values(extract_params(read_notebook(MINI)), {
        "number_of_epochs": "3", "model_name": "injected_model", "Data_type": "Stacks",
        "Weights_choice": "last", "flip_probability": "0.3",
        "Use_the_current_trained_model": "true",  # equal to section 5's default, not 6.1's
    })
    executed = tmp_path / "mini_batch.out.ipynb"
    started = time.monotonic()
    papermill.execute_notebook(str(batch), str(executed), parameters=given,
                               kernel_name="python3", cwd=str(cwd), progress_bar=False)
    elapsed = time.monotonic() - started

    model_dir = results / "injected_model"  # model_path defaults to the results dir
    summary = json.loads((model_dir / "training_summary.json").read_text())
    assert summary["number_of_epochs"] == 3
    assert summary["total_steps"] == 3 * 4 * 4  # epochs x Multiply_dataset_by x batch_size
    assert summary["Data_type"] == 2  # raw field: the text "Stacks" evaluated in the notebook
    assert summary["Weights_choice"] == "last" and summary["flip_probability"] == 0.3
    assert summary["Training_source"] == str(data / "train_images")
    assert summary["requirements_path"] == str(results / "requirements.txt")
    predictions = json.loads((results / "results" / "predictions.json").read_text())
    assert predictions["section_5_used_current_model"] is True
    assert predictions["section_6_1_used_current_model"] is True  # given once, used everywhere
    assert predictions["Data_folder"] == str(data / "test_images")
    assert (results / "requirements.txt").exists()  # `!pip freeze >` redirected to results
    assert (cwd / "training_log.txt").read_text() == "trained injected_model\n"

    out = read_notebook(executed)
    text = outputs_of(out)
    assert "ERROR" not in text
    # offline: the version check fails fast and pdf_export, defined after it, still exists
    version_cell = next(c for c in out.cells if "Latest_Notebook_versions.csv" in c.source)
    assert version_cell.metadata["papermill"]["duration"] < 10
    assert ("hpc-dl4mic: version check skipped" in text) or ("Latest notebook version" in text)
    assert (model_dir / "injected_model_report.txt").read_text().startswith("Network: Mini")
    assert "hpc-dl4mic: parameters given: Data_type, Use_the_current_trained_model" in text
    assert elapsed < 120


def test_batch_notebook_without_parameters_uses_each_sections_default(tmp_path):
    data, results, cwd = folders(tmp_path)
    batch = tmp_path / "mini_batch.ipynb"
    convert_file(MINI, batch, mode="batch", sections_to_remove="1.2. 2.", data_dir=str(data),
                 results_dir=str(results))
    papermill.execute_notebook(str(batch), str(tmp_path / "out.ipynb"), parameters={},
                               kernel_name="python3", cwd=str(cwd), progress_bar=False)
    predictions = json.loads((results / "results" / "predictions.json").read_text())
    assert predictions["section_5_used_current_model"] is True
    assert predictions["section_6_1_used_current_model"] is False
    summary = json.loads((results / "mini_model" / "training_summary.json").read_text())
    assert summary["number_of_epochs"] == 10 and summary["Data_type"] == 1


def test_interactive_notebook_runs_headless_with_values_restored_from_results(tmp_path):
    data, results, cwd = folders(tmp_path)
    interactive = tmp_path / "mini_interactive.ipynb"
    convert_file(MINI, interactive, mode="interactive", sections_to_remove="1.2.",
                 data_dir=str(data), results_dir=str(results))
    (results / "widget_values.json").write_text(json.dumps(
        {"3.1.": {"number_of_epochs": 5, "Data_type": "Stacks"}}))
    papermill.execute_notebook(str(interactive), str(tmp_path / "out.ipynb"),
                               kernel_name="python3", cwd=str(cwd), progress_bar=False)
    summary = json.loads((results / "mini_model" / "training_summary.json").read_text())
    assert summary["number_of_epochs"] == 5 and summary["Data_type"] == 2
