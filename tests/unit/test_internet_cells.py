"""Downloading cells of the real ZeroCostDL4Mic notebooks: found, guarded, skipped offline."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from hpc_dl4mic.batch import task_runner
from hpc_dl4mic.batch.status import _skipped_note
from hpc_dl4mic.notebooks import cellcode
from hpc_dl4mic.notebooks.convert import convert, internet_summary, read_notebook
from hpc_dl4mic.notebooks.internet import (
    GUARD,
    SKIP,
    find_internet_uses,
    guard_cell,
    line_uses,
    report_lines,
    summarize,
)
from hpc_dl4mic.notebooks.sections import _src
from hpc_dl4mic.notebooks.versioncheck import _mask_magics

SEED = Path(__file__).resolve().parents[3] / "shared" / "seed-data" / "zerocostdl4mic"
NOTEBOOKS = SEED / "Colab_notebooks"
STARDIST = NOTEBOOKS / "StarDist_2D_ZeroCostDL4Mic.ipynb"
needs_seed = pytest.mark.skipif(not NOTEBOOKS.is_dir(), reason="../shared seed data missing")


def online_namespace(tmp_path: Path) -> dict:
    ns: dict = {"HPC_DL4MIC_RESULTS_DIR": str(tmp_path)}
    exec(compile(cellcode.template("online"), "<online>", "exec"), ns)
    return ns


def parses(src: str) -> bool:
    import warnings

    try:
        with warnings.catch_warnings():  # the notebooks hold invalid escapes like '\/'
            warnings.simplefilter("ignore")
            ast.parse("\n".join(_mask_magics(src.split("\n"))))
        return True
    except SyntaxError:
        return False


@pytest.mark.parametrize("line, found", [
    ("!wget -O F-actin.zip https://www.dropbox.com/s/x.zip", True),
    ("  !git clone https://github.com/juglab/DecoNoising", True),
    ("response = requests.get(zenodo_link)", True),
    ("urllib.request.urlretrieve(url, path)", True),
    ("wget.download(url, out)", True),
    ("df = pd.read_csv('https://example.org/x.csv')", True),
    ("!pip install -q wget", False),  # stripped by the conversion anyway
    ("import wget", False),
    ("# wget.download(url)", False),
    ("print('download the model with wget.download(url)')", True),  # cheap, errs on the safe side
    ("def download_weights(model_name):", False),
    ("df = pd.read_csv(path)", False),
    ("collection_path = Path(pooch.retrieve(COLLECTION_URL, known_hash=None))", True),
])
def test_lines_that_download_are_recognised(line, found):
    assert bool(line_uses(line)) is found


@needs_seed
def test_stardist_2d_downloads_are_found_with_their_sections():
    uses = find_internet_uses(read_notebook(STARDIST))
    summary = {e["section"]: e for e in summarize(uses)}
    assert set(summary) == {"3.1.", "3.4."}  # the version check is not one: it is offline-safe
    assert summary["3.1."]["skippable"] and summary["3.1."]["title"] == "Download a test dataset"
    assert not summary["3.4."]["skippable"]


@needs_seed
@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_the_bioimageio_notebooks_model_zoo_download_is_found(framework):
    # they fetch the BioImage Model Zoo's collection with pooch.retrieve: offline that must
    # stop with NeedsInternet in its section, not hang on DNS
    notebook = (SEED.parent / "dl4miceverywhere" / "notebooks" / "Bespoke_notebooks"
                / f"bioimageio-{framework}" / f"load_bioimageio_{framework}.ipynb")
    uses = find_internet_uses(read_notebook(notebook))
    assert any("pooch.retrieve(COLLECTION_URL" in u.what for u in uses), uses


def test_a_guard_runs_only_where_the_download_would(tmp_path, monkeypatch):
    src = ("x = 1\nif use_demo:\n    wget.download(url, out)\n"
           "def fetch(u):\n    return requests.get(u)\n")
    guarded, count = guard_cell(src, "3.4.", "Pretrained weights")
    assert count == 2 and guarded.count(GUARD) == 2
    monkeypatch.setenv("HPC_DL4MIC_OFFLINE", "1")
    ns = online_namespace(tmp_path)
    ns.update(use_demo=False, wget=None, requests=None, url="u", out="o")
    exec(guarded, ns)  # the branch does not run: no error
    with pytest.raises(ns["NeedsInternet"], match=r"section 3\.4\. 'Pretrained weights' needs "
                       r"the internet \(return requests\.get\(u\)\).*--skip-sections 3\.4\."):
        ns["fetch"]("u")
    ns["use_demo"] = True
    with pytest.raises(ns["NeedsInternet"]):
        exec(guarded, ns)


def test_online_the_guard_is_silent(tmp_path, monkeypatch):
    monkeypatch.delenv("HPC_DL4MIC_OFFLINE", raising=False)
    ns = online_namespace(tmp_path)
    ns[GUARD]("1.", "t", "wget x")
    assert ns[SKIP]("3.1.", "t", "wget x") is False


def test_a_download_in_an_if_header_or_after_a_colon_is_left_alone():
    for src in ("if requests.get(u).ok:\n    pass\n", "if x: wget.download(u)\n"):
        assert guard_cell(src, "1.", "t") == (src, 0)


@needs_seed
@pytest.mark.parametrize("mode", ["batch", "interactive"])
def test_every_guarded_cell_of_the_real_notebooks_still_parses(mode):
    checked = 0
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        out = convert(read_notebook(path), mode=mode, tool_version="t")
        for cell in out.cells:
            src = _src(cell)
            if GUARD in src or SKIP in src:
                checked += 1
                assert parses(src), (path.name, src[:300])
    assert checked >= 20


@needs_seed
def test_batch_mode_skips_the_test_data_download_offline_and_records_it(tmp_path, monkeypatch):
    out = convert(read_notebook(STARDIST), mode="batch", tool_version="t")
    cell = next(c for c in out.cells if f"if not {SKIP}(" in _src(c))
    assert "zenodo" in _src(cell)
    internet = {e["section"]: e["offline"] for e in out.metadata["hpc_dl4mic"]["internet"]}
    assert internet == {"3.1.": "skipped", "3.4.": "fails with a clear error"}
    monkeypatch.setenv("HPC_DL4MIC_OFFLINE", "1")
    ns = online_namespace(tmp_path)
    exec(compile(_src(cell), "<cell>", "exec"), ns)  # requests is never touched
    entry = json.loads((tmp_path / "skipped.jsonl").read_text())
    assert entry["section"] == "3.1." and entry["reason"] == "needs the internet"
    # the task's status reports it, and `batch status` shows it
    skipped = task_runner.read_skipped(str(tmp_path / "skipped.jsonl"))
    assert skipped[0]["title"] == "Download a test dataset"
    assert _skipped_note({"skipped": skipped}) == "skipped offline: 3.1."


@needs_seed
def test_interactive_mode_guards_but_never_skips():
    out = convert(read_notebook(STARDIST), mode="interactive", tool_version="t")
    sources = "\n".join(_src(c) for c in out.cells)
    assert SKIP + "(" not in sources.replace(f"def {SKIP}(", "")
    assert sources.count(f"{GUARD}('3.1.'") == 1


@needs_seed
def test_report_lines_say_what_happens_offline():
    lines = report_lines(internet_summary(read_notebook(STARDIST)))
    assert lines[0].startswith("section 3.1. 'Download a test dataset' downloads (")
    assert "skipped on offline nodes" in lines[0]
    assert "--skip-sections 3.4." in lines[1]


@needs_seed
def test_params_lists_the_sections_that_need_the_internet():
    from click.testing import CliRunner

    from hpc_dl4mic.cli import main

    result = CliRunner().invoke(main, ["params", "StarDist_2D_DL4Mic", "--notebook",
                                       str(STARDIST)])
    assert result.exit_code == 0, result.output
    assert "Needs the internet" in result.output and "section 3.1." in result.output
