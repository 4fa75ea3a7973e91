"""bench/run_all.py's table (from sample --json outputs) and scripts/demo_check.py."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


run_all = load(REPO / "bench" / "run_all.py")


def test_rows_take_figure_reference_ratio_and_target():
    (cli,) = run_all.rows_cli({"help_s": 0.05, "python_pass_s": 0.025, "target_s": 0.06})
    assert cli["figure"] == 50 and cli["unit"] == "ms" and cli["reference"] == 25
    assert cli["ratio"] == 2 and cli["met"] is True and cli["target"] == "<= 60 ms"
    tunnel = run_all.rows_tunnel({
        "size_mb": 10, "results": {"ours": {"mb_s": 100.0, "median_ms": 2.0},
                                   "openssh": {"mb_s": 200.0, "median_ms": 1.5}},
        "ratios": {"throughput_ours_over_openssh": 0.5, "latency_ours_over_openssh": 4 / 3}})
    assert [r["met"] for r in tunnel] == [False, True]
    submit = run_all.rows_submit({"summary": {
        "ours": {"overhead": [0.4, 0.3, 0.5], "total_url": [4.0, 3.9, 4.2]},
        "reference": {"overhead": None, "total_url": [5.0, 5.0, 5.0]}}})
    assert submit[0]["ratio"] == 0.8 and submit[1]["reference"] is None
    sweep = run_all.rows_sweep({"ours": {"tasks": 1000, "submit_s": 0.3, "status_s": 0.2,
                                         "status_rows": 1000},
                                "reference": {"jobs": 100, "submit_s": 2.0}})
    assert sweep[0]["reference"] == 20.0 and "scaled" in sweep[0]["reference_is"]


def test_markdown_lists_rows_and_what_did_not_run():
    meta = {"date": "2026-12-03T10:00:00+00:00", "quick": True,
            "machine": {"nproc": 2, "cpu": "X", "python": "3.11", "os": "Linux"}}
    results = {
        "cli_startup": {"status": "ok", "seconds": 1.0, "rows": run_all.rows_cli(
            {"help_s": 0.1, "python_pass_s": 0.02, "target_s": 0.06})},
        "gpu": {"status": "skipped", "why": "no GPU", "rows": []},
        "sweep": {"status": "failed", "why": "exit 1: boom", "rows": [], "seconds": 2.0}}
    text = run_all.markdown(results, meta)
    assert "| cli_startup | `hpc-dl4mic --help` wall time (median) | 100.0 ms |" in text
    assert "5.00x | <= 60 ms (NOT met) |" in text
    assert "- gpu: skipped: no GPU" in text and "- sweep: failed: exit 1: boom" in text


def test_only_refuses_an_unknown_bench():
    out = subprocess.run([sys.executable, str(REPO / "bench" / "run_all.py"), "--only",
                          "nope"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown bench(es) nope" in out.stderr


def test_demo_check_batch_ended(tmp_path):
    status = tmp_path / "status.json"
    check = [sys.executable, str(REPO / "scripts" / "demo_check.py"), "batch-ended",
             str(status)]
    status.write_text(json.dumps([{"state": "completed"}, {"state": "running"}]))
    assert subprocess.run(check, capture_output=True).returncode == 1
    status.write_text(json.dumps([{"state": "completed"}, {"state": "failed"}]))
    out = subprocess.run(check, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "1 completed, 1 failed"
