"""The notebooks' PDF reports in batch runs: a failing report is one line and an entry in
skipped.jsonl, and the run goes on (the Diffusion SMLM notebook's pdf_export formats a
name it never defines, after the model is saved)."""

from __future__ import annotations

import ast
import json
import re

import pytest
from seeddata import COLAB_NOTEBOOKS

from hpc_dl4mic.batch.status import _skipped_note
from hpc_dl4mic.notebooks.cellcode import template
from hpc_dl4mic.notebooks.convert import convert, read_notebook
from hpc_dl4mic.notebooks.reports import HELPER, guard_reports

DIFFUSION = COLAB_NOTEBOOKS / "Diffusion_Model_SMLM_ZeroCostDL4Mic.ipynb"
_MAGIC = re.compile(r"(?m)^([ \t]*)[!%].*$")


def _python(src: str) -> str:
    return _MAGIC.sub(lambda m: f"{m.group(1)}pass", src)


def _code(nb) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == "code"]


def test_batch_conversion_routes_the_diffusion_training_report_through_the_helper():
    nb = read_notebook(DIFFUSION)
    batch = convert(nb, mode="batch")
    training = next(s for s in _code(batch) if "image_train.main(" in s)
    assert (f"{HELPER}('4.1.', 'Train the network', pdf_export, trained = True, "
            "augmentation = Use_Data_augmentation, pretrained_model = Use_pretrained_model)"
            in training)
    assert "4.1." in batch.metadata["hpc_dl4mic"]["guarded_reports"]
    assert "def pdf_export(" in "\n".join(_code(batch))  # the definition is untouched
    interactive = convert(nb, mode="interactive")  # a person runs the next cell there
    assert HELPER + "(" not in "\n".join(_code(interactive)[1:])


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::SyntaxWarning")
@pytest.mark.parametrize("path", sorted(COLAB_NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_rewritten_report_call_of_the_real_notebooks_is_still_python(path):
    nb = read_notebook(path)
    cells = [dict(c) for c in nb["cells"]]
    before = {i: "".join(c["source"]) for i, c in enumerate(cells) if c["cell_type"] == "code"}
    guard_reports(cells)
    for i, src in before.items():
        try:
            ast.parse(_python(src))
        except SyntaxError:
            continue  # not Python to begin with (Colab forms, shell lines in blocks)
        ast.parse(_python(cells[i]["source"]))


def _helper(results) -> dict:
    namespace = {"HPC_DL4MIC_RESULTS_DIR": str(results)}
    exec(template("reports"), namespace)  # noqa: S102 - the cell code itself
    return namespace


def test_a_failing_report_prints_one_line_records_it_and_the_run_goes_on(tmp_path, capsys):
    report = _helper(tmp_path)[HELPER]

    def pdf_export(trained=False):
        return number_of_channels  # noqa: F821 - the notebook's own bug

    assert report("4.1.", "Train the network", pdf_export, trained=True) is None
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["hpc-dl4mic: the notebook's PDF report in section 4.1. 'Train the network' "
                   "failed (pdf_export: NameError: name 'number_of_channels' is not defined); "
                   "the run goes on without it"]
    (entry,) = [json.loads(x) for x in (tmp_path / "skipped.jsonl").read_text().splitlines()]
    assert entry["section"] == "4.1." and entry["reason"] == "report failed"
    assert "NameError" in entry["what"]
    assert report("5.", "QC", lambda: "pdf written") == "pdf written"
    assert (tmp_path / "skipped.jsonl").read_text().count("\n") == 1


def test_a_keyboard_interrupt_in_a_report_still_stops_the_run(tmp_path):
    report = _helper(tmp_path)[HELPER]

    def stop():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        report("4.1.", "Train", stop)


def test_batch_status_tells_failed_reports_from_sections_skipped_offline():
    skipped = [{"section": "3.1.", "reason": "needs the internet"},
               {"section": "4.1.", "reason": "report failed"},
               {"section": "5.1.", "reason": "report failed"}]
    assert _skipped_note({"skipped": skipped}) == "skipped offline: 3.1.; report failed: 4.1. 5.1."
