"""The batch summary (CSV/JSON) and HTML report, built from a fetched run folder."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest

from hpc_dl4mic.batch import report
from hpc_dl4mic.batch.report import (
    curves,
    human_duration,
    summary_rows,
    task_metrics,
    write_report,
    write_summary,
)

QC = "mini_model/Quality Control/training_evaluation"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def task(fetched: Path, index: int, training: str | None = None) -> Path:
    folder = fetched / "tasks" / str(index)
    write(folder / "status.json", json.dumps({"state": "completed", "index": index}))
    if training is not None:
        write(folder / f"{QC}.csv", training)
    return folder


def row(index: int, state: str = "completed", **params) -> dict:
    return {"index": index, "state": state, "params": params, "duration": 65.0,
            "node": "gpu01", "error": "", "cell": ""}


def polylines(page: str) -> list[list[tuple[float, float]]]:
    found = re.findall(r'<polyline points="([^"]*)"', page)
    return [[tuple(map(float, p.split(","))) for p in pts.split()] for pts in found]


# task_metrics

def test_metrics_are_the_last_row_of_each_csv_keyed_by_path_and_column(tmp_path):
    task(tmp_path, 0, "loss,val_loss,learning rate\n1.0,2.0,0.1\n0.5,0.75,0.01\n")
    write(tmp_path / "tasks/0/qc/scores.csv", "File name,IoU,count\na.tif,0.5,3\nb.tif,0.8,4\n")
    metrics = task_metrics(tmp_path / "tasks/0")
    assert metrics == {f"{QC}:loss": 0.5, f"{QC}:val_loss": 0.75, f"{QC}:learning rate": 0.01,
                       "qc/scores:File name": "b.tif", "qc/scores:IoU": 0.8,
                       "qc/scores:count": 4}
    assert list(metrics)[0].startswith("mini_model/")  # sorted by relative path
    assert isinstance(metrics["qc/scores:count"], int)


def test_metrics_skip_empty_header_only_malformed_and_undecodable_csvs(tmp_path):
    folder = tmp_path / "t"
    write(folder / "empty.csv", "")
    write(folder / "header_only.csv", "a,b\n")
    write(folder / "ragged.csv", "a,b\n1,2\n3\n")
    (folder / "binary.csv").write_bytes(b"a,b\n\xff\xfe,\x00\x81\n")
    write(folder / "good.csv", "x\n\n7\n\n")
    assert task_metrics(folder) == {"good:x": 7}


def test_metrics_skip_csvs_over_5_mb(tmp_path):
    write(tmp_path / "big.csv", "a\n" + "1\n" * (3 * 1024 * 1024))
    assert task_metrics(tmp_path) == {}


def test_metrics_keep_only_the_first_50_keys(tmp_path):
    header = ",".join(f"c{i:02d}" for i in range(60))
    write(tmp_path / "a.csv", header + "\n" + ",".join(["1"] * 60) + "\n")
    write(tmp_path / "b.csv", "z\n1\n")
    metrics = task_metrics(tmp_path)
    assert len(metrics) == 50
    assert list(metrics) == [f"a:c{i:02d}" for i in range(50)]


def test_metrics_of_a_missing_folder_are_empty(tmp_path):
    assert task_metrics(tmp_path / "nope") == {}


def test_metric_text_that_is_not_a_number_stays_text(tmp_path):
    write(tmp_path / "m.csv", "a,b,c,d\n3.0,1_000,yes,1e-3\n")
    assert task_metrics(tmp_path) == {"m:a": 3.0, "m:b": "1_000", "m:c": "yes", "m:d": 0.001}


# curves

def test_curves_are_the_numeric_columns_of_training_evaluation(tmp_path):
    task(tmp_path, 0, "epoch_name,loss,val_loss\nfirst,1,2\nsecond,0.5,1.5\n")
    assert curves(tmp_path / "tasks/0") == {"loss": [1.0, 0.5], "val_loss": [2.0, 1.5]}


def test_a_curve_stops_at_its_first_non_numeric_cell(tmp_path):
    write(tmp_path / "training_evaluation.csv", "loss,val_loss\n1,2\n0.5,oops\n0.25,1\n0.1\n")
    assert curves(tmp_path) == {"loss": [1.0, 0.5, 0.25, 0.1], "val_loss": [2.0]}


def test_any_csv_with_a_loss_column_gives_curves_and_several_files_are_prefixed(tmp_path):
    write(tmp_path / "a/training_evaluation.csv", "loss\n1\n2\n")
    write(tmp_path / "b/history.csv", "loss,acc\n3,0.5\n")
    write(tmp_path / "c/scores.csv", "File name,IoU\nx.tif,0.5\n")
    assert curves(tmp_path) == {"a/training_evaluation:loss": [1.0, 2.0],
                                "b/history:loss": [3.0], "b/history:acc": [0.5]}


def test_curves_of_a_missing_folder_are_empty(tmp_path):
    assert curves(tmp_path / "nope") == {}


# summary rows and files

def test_summary_rows_have_every_column_in_first_appearance_order(tmp_path):
    task(tmp_path, 0, "loss\n0.5\n")
    task(tmp_path, 1)
    write(tmp_path / "tasks/1/extra.csv", "score\n9\n")
    rows = [row(0, lr=0.1), row(1, "failed", epochs=5, lr=0.2), row(2, "pending")]
    flat = summary_rows(rows, tmp_path)
    columns = ["index", "state", "duration", "node", "error", "cell", "param:lr",
               "param:epochs", f"metric:{QC}:loss", "metric:extra:score"]
    assert [list(f) for f in flat] == [columns] * 3
    assert flat[0]["param:epochs"] is None and flat[0][f"metric:{QC}:loss"] == 0.5
    assert flat[1]["metric:extra:score"] == 9 and flat[1][f"metric:{QC}:loss"] is None
    assert flat[2]["param:lr"] is None and flat[2]["metric:extra:score"] is None  # no folder


def test_summary_files_keep_special_characters_and_json_encode_containers(tmp_path):
    rows = [row(0, name="a<b & c", shape=[1, 2]), row(1, name="plain")]
    rows[1]["duration"] = None
    csv_path, json_path = write_summary(rows, tmp_path)
    assert (csv_path, json_path) == (tmp_path / "summary.csv", tmp_path / "summary.json")
    with open(csv_path, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert table[0]["param:name"] == "a<b & c"
    assert json.loads(table[0]["param:shape"]) == [1, 2]
    assert table[1]["duration"] == "" and table[1]["param:shape"] == ""
    assert json_path.read_text().startswith('[\n {\n  "index": 0')  # indent=1
    data = json.loads(json_path.read_text())
    assert data == summary_rows(rows, tmp_path)
    assert data[0]["param:name"] == "a<b & c"


def test_summary_json_writes_nan_metrics_as_null(tmp_path):
    task(tmp_path, 0)
    write(tmp_path / "tasks/0/m.csv", "loss\nnan\n")
    _, json_path = write_summary([row(0)], tmp_path)
    assert json.loads(json_path.read_text())[0]["metric:m:loss"] is None
    assert "NaN" not in json_path.read_text()


def test_summary_of_no_tasks_is_a_header_and_an_empty_list(tmp_path):
    csv_path, json_path = write_summary([], tmp_path)
    assert csv_path.read_text() == "index,state,duration,node,error,cell\n"
    assert json.loads(json_path.read_text()) == []


def test_writes_leave_only_the_final_files(tmp_path):
    write_summary([row(0)], tmp_path)
    write_report([row(0)], tmp_path, title="run", varying=[])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "summary.csv",
                                                         "summary.json"]


def test_a_failing_write_leaves_no_partial_or_temp_file(tmp_path, monkeypatch):
    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_summary([row(0)], tmp_path)
    with pytest.raises(OSError):
        write_report([row(0)], tmp_path, title="run", varying=[])
    assert list(tmp_path.iterdir()) == []


# the HTML report

def test_human_durations():
    assert [human_duration(v) for v in (None, float("nan"), 4.4, 65, 3600 + 190)] == [
        "", "", "4 s", "1 min 05 s", "1 h 03 min 10 s"]


def test_a_report_of_no_tasks_says_so(tmp_path):
    page = write_report([], tmp_path, title="empty run", varying=[]).read_text()
    assert "<h1>empty run</h1>" in page and "no tasks" in page
    assert "<svg" not in page and "<table" not in page


def test_the_report_table_has_one_line_per_task_with_varying_params_and_state_classes(tmp_path):
    rows = [row(0, lr=0.1, epochs=5), row(1, "failed", lr=0.2, epochs=5)]
    rows[1].update(error="ValueError: bad", cell="3. Train")
    page = write_report(rows, tmp_path, title="sweep", varying=["lr"]).read_text()
    assert page.count("<tr>") == 3
    assert "<th>lr</th>" in page and "<th>epochs</th>" not in page
    assert 'class="state completed"' in page and 'class="state failed"' in page
    assert "1 min 05 s" in page and "3. Train" in page and "ValueError: bad" in page


def test_everything_from_the_data_is_escaped(tmp_path):
    rows = [row(0, name="a<b & c")]
    rows[0].update(error="<script>alert(1)</script>", cell="<b>cell</b>", state="<x>")
    task(tmp_path, 0)
    write(tmp_path / "tasks/0/training_evaluation.csv", "loss,<i>col</i>\n1,2\n2,3\n")
    page = write_report(rows, tmp_path, title="T <&>", varying=["name"]).read_text()
    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&lt;b &amp; c" in page and "<h1>T &lt;&amp;&gt;</h1>" in page
    assert "&lt;i&gt;col&lt;/i&gt;" in page and "<x>" not in page


def test_the_report_is_self_contained(tmp_path):
    task(tmp_path, 0, "loss\n1\n0.5\n")
    page = write_report([row(0)], tmp_path, title="run", varying=[]).read_text()
    assert "<style>" in page and "<svg" in page
    assert "http" not in page and "<script" not in page and "<link" not in page


def test_one_plot_per_curve_name_with_a_line_and_legend_entry_per_task(tmp_path):
    task(tmp_path, 0, "loss,val_loss\n1,2\n0.5,1\n0.25,0.5\n")
    task(tmp_path, 1, "loss,val_loss\n2,3\n1,2\n")
    task(tmp_path, 2, "loss\n3\n")
    rows = [row(0, lr=0.1), row(1, lr=0.2), row(2, lr=0.3), row(3, "failed", lr=0.4)]
    page = write_report(rows, tmp_path, title="run", varying=["lr"]).read_text()
    assert page.count("<svg") == 2
    loss, val_loss = page.split("<figure>")[1:]
    assert "<figcaption>loss</figcaption>" in loss and loss.count("<polyline") == 3
    assert "<figcaption>val_loss</figcaption>" in val_loss and val_loss.count("<polyline") == 2
    assert "task 0, lr=0.1" in loss and "task 2, lr=0.3" in loss and "task 3" not in page[
        page.index("<figure>"):]
    colours = re.findall(r'stroke="(#[0-9a-f]{6})"', loss)
    assert len(set(colours)) == 3
    assert re.findall(r'stroke="(#[0-9a-f]{6})"', val_loss) == colours[:2]  # same per task
    assert ">0.25<" in loss and ">3<" in loss  # y min/max tick labels
    assert ">1<" in loss and ">epoch<" in loss  # x ticks and label


def test_a_task_whose_folder_is_missing_is_listed_without_curves(tmp_path):
    task(tmp_path, 0, "loss\n1\n0.5\n")
    page = write_report([row(0), row(7, "failed")], tmp_path, title="r", varying=[]).read_text()
    assert page.count("<tr>") == 3 and page.count("<polyline") == 1


def test_a_single_point_curve_is_drawn_with_a_marker(tmp_path):
    task(tmp_path, 0, "loss\n0.5\n")
    page = write_report([row(0)], tmp_path, title="r", varying=[]).read_text()
    [line] = polylines(page)
    assert len(line) == 1 and "<circle" in page
    assert all(map(lambda v: v == v, line[0]))  # no NaN coordinates


def test_nan_and_inf_points_are_skipped(tmp_path):
    task(tmp_path, 0, "loss\n1\nnan\ninf\n0.5\n-inf\n0.25\n")
    page = write_report([row(0)], tmp_path, title="r", varying=[]).read_text()
    [line] = polylines(page)
    assert len(line) == 3
    assert "nan" not in page.split("<svg")[1] and "inf" not in page.split("<svg")[1]


def test_a_constant_curve_is_drawn_flat_in_the_middle(tmp_path):
    task(tmp_path, 0, "loss\n2\n2\n2\n")
    page = write_report([row(0)], tmp_path, title="r", varying=[]).read_text()
    [line] = polylines(page)
    assert len({y for _, y in line}) == 1 and len({x for x, _ in line}) == 3


def test_long_curves_are_downsampled_evenly_keeping_both_ends(tmp_path):
    task(tmp_path, 0, "loss\n" + "".join(f"{i}\n" for i in range(2000)))
    page = write_report([row(0)], tmp_path, title="r", varying=[]).read_text()
    [line] = polylines(page)
    assert len(line) == report.MAX_POINTS
    xs = [x for x, _ in line]
    assert xs == sorted(xs) and xs[0] == 70.0 and xs[-1] == 508.0  # plot's left/right edges
    assert ">2000<" in page
