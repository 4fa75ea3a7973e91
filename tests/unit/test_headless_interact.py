"""Batch mode: ipywidgets' interact runs its function once headless (cellcode/headless.py),
as the real DRMIME 2D notebook's 4.3. needs (papermill hung on its widget messages)."""

from __future__ import annotations

import json
import sys
import types

from hpc_dl4mic.notebooks.cellcode import template


def run_headless(monkeypatch, code: str) -> dict:
    """The headless block, then ``code``, with a stub ipywidgets module (the test venv has
    none) whose interact would fail if it were still used."""
    def real_interact(*_a, **_k):
        raise AssertionError("the widget interact ran")

    pkg = types.ModuleType("ipywidgets")
    sub = types.ModuleType("ipywidgets.widgets")
    for module in (pkg, sub):
        module.interact = module.interact_manual = real_interact
    pkg.widgets = sub
    monkeypatch.setitem(sys.modules, "ipywidgets", pkg)
    monkeypatch.setitem(sys.modules, "ipywidgets.widgets", sub)
    ns: dict = {}
    exec(template("headless") + "\n" + code, ns)  # noqa: S102 - the cell's own code
    return ns


def test_a_decorated_function_runs_once_with_the_first_file_of_a_dropdown(monkeypatch, capsys):
    ns = run_headless(monkeypatch, """
from ipywidgets import interact
calls = []
@interact
def show_QC_results(file=['b.tif', 'a.tif']):
    calls.append(file)
""")
    assert ns["calls"] == ["b.tif"] and callable(ns["show_QC_results"])
    assert "show_QC_results(file='b.tif') run once instead of an interactive widget" in \
        capsys.readouterr().out


def test_keyword_abbreviations_give_the_values_a_widget_would_start_at(monkeypatch):
    ns = run_headless(monkeypatch, """
import ipywidgets as widgets
seen = {}
class Slider:
    value = 7
@widgets.interact(n=(1, 9), x=(0.0, 1.0), k=(1, 20), d={'one': 1, 'two': 2},
                  pairs=[('first', 10), ('second', 20)], s=Slider(), plain='text')
def f(n, x, k=5, d=None, pairs=None, s=None, plain=None):
    seen.update(n=n, x=x, k=k, d=d, pairs=pairs, s=s, plain=plain)
""")
    assert ns["seen"] == dict(n=5, x=0.5, k=5, d=1, pairs=10, s=7, plain="text")


def test_the_batch_set_up_cell_carries_the_headless_interact():
    from hpc_dl4mic.notebooks.cells import batch_setup_source

    source = batch_setup_source([], "/data", "/results")
    assert "def hpc_dl4mic_interact(" in source and "_hpc_patch_interact()" in source
    compile(source, "batch-setup", "exec")
    json.dumps(source)


def test_a_generator_of_choices_gives_its_first_item_as_a_dropdown_would(monkeypatch):
    # Deep-STORM 2D's 5.2.: `def show_QC_results(file = list_files(folder, 'tif'))`, a generator
    ns = run_headless(monkeypatch, """
from ipywidgets import interact
calls = []
@interact
def show_QC_results(file=(name for name in ['x.tif', 'y.tif'])):
    calls.append('GT_image_' + file)
@interact(frame=map(str, range(3)))
def show(frame):
    calls.append(frame)
""")
    assert ns["calls"] == ["GT_image_x.tif", "0"]
