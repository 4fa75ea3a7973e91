"""A batch run's summary (``summary.csv``/``summary.json``) and HTML report, from the
fetched run folder: ``tasks/<index>/`` holds each task's /results (status.json, the
executed notebook and the CSV files the notebook wrote, e.g. ``training_evaluation.csv``).

Standard library only; the report is one self-contained page (inline CSS and SVG, no
JavaScript, no external URLs) and every text that comes from the data is HTML-escaped.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from html import escape
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write

Row = dict[str, Any]  # index, state, params, duration, node, error, cell

MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_METRICS = 50
MAX_POINTS = 500
BASE_COLUMNS = ("index", "state", "duration", "node", "error", "cell")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.I)


def _number(text: str) -> int | float | None:
    """``text`` as an int (integral text) or a float, else None."""
    t = text.strip()
    if _INT.fullmatch(t):
        return int(t)
    return float(t) if _FLOAT.fullmatch(t) else None


def _csv_files(task_dir: Path) -> list[tuple[str, Path]]:
    """(relative path without .csv, path) of every CSV under ``task_dir``, sorted."""
    if not task_dir.is_dir():
        return []
    found = []
    for root, dirs, files in os.walk(task_dir):
        dirs.sort()
        for name in files:
            if name.lower().endswith(".csv"):
                path = Path(root) / name
                found.append((path.relative_to(task_dir).as_posix()[:-4], path))
    return sorted(found)


def _read_csv(path: Path) -> list[list[str]] | None:
    """Header and data rows (blank rows dropped); None if unreadable, too big or no data."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_CSV_BYTES:
            return None
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = [r for r in csv.reader(handle) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return rows if len(rows) >= 2 else None


def task_metrics(task_dir: Path) -> dict[str, Any]:
    """The last data row of every CSV under ``task_dir``, keyed ``<rel path>:<column>``
    (numbers parsed; at most 50 keys; unreadable or malformed files skipped)."""
    out: dict[str, Any] = {}
    for rel, path in _csv_files(Path(task_dir)):
        rows = _read_csv(path)
        if rows is None or len(rows[-1]) != len(rows[0]):
            continue
        for column, text in zip(rows[0], rows[-1]):
            if len(out) >= MAX_METRICS:
                return out
            value = _number(text)
            out[f"{rel}:{column}"] = text if value is None else value
    return out


def curves(task_dir: Path) -> dict[str, list[float]]:
    """Per-epoch curves (numeric columns) of every training_evaluation.csv, or CSV with a
    ``loss`` column, under ``task_dir``; keyed by column (``<rel path>:<column>`` when
    several files). A column's list stops at its first non-numeric cell."""
    per_file: list[tuple[str, dict[str, list[float]]]] = []
    for rel, path in _csv_files(Path(task_dir)):
        rows = _read_csv(path)
        if rows is None or not (path.name == "training_evaluation.csv" or "loss" in rows[0]):
            continue
        found: dict[str, list[float]] = {}
        for j, column in enumerate(rows[0]):
            values: list[float] = []
            for row in rows[1:]:
                value = _number(row[j]) if j < len(row) else None
                if value is None:
                    break
                values.append(float(value))
            if values:
                found[column] = values
        if found:
            per_file.append((rel, found))
    if len(per_file) == 1:
        return per_file[0][1]
    return {f"{rel}:{k}": v for rel, found in per_file for k, v in found.items()}


def summary_rows(rows: list[Row], fetched: Path) -> list[dict[str, Any]]:
    """One flat dict per task: the base columns, ``param:<name>`` and ``metric:<key>``
    (first-appearance order); every dict has every column (None where missing)."""
    params: dict[str, None] = {}
    for row in rows:
        params.update(dict.fromkeys(row.get("params") or {}))
    metrics = [task_metrics(Path(fetched) / "tasks" / str(row.get("index"))) for row in rows]
    metric_keys: dict[str, None] = {}
    for found in metrics:
        metric_keys.update(dict.fromkeys(found))
    out = []
    for row, found in zip(rows, metrics):
        flat = {k: row.get(k) for k in BASE_COLUMNS}
        given = row.get("params") or {}
        flat.update({f"param:{k}": given.get(k) for k in params})
        flat.update({f"metric:{k}": found.get(k) for k in metric_keys})
        out.append(flat)
    return out


def _cell(value: Any) -> str:
    """A CSV cell: '' for None, JSON for dicts/lists, else str."""
    if value is None:
        return ""
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as None (summary.json stays strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return [_finite(v) for v in value] if isinstance(value, list) else value


def write_summary(rows: list[Row], fetched: Path) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``summary.json`` (the :func:`summary_rows`) atomically into
    ``fetched``; NaN/inf become null in the JSON. Returns (csv_path, json_path)."""
    fetched = Path(fetched)
    flat = summary_rows(rows, fetched)
    columns = list(flat[0]) if flat else list(BASE_COLUMNS)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(r[c]) for c in columns] for r in flat)
    text = json.dumps(_finite(flat), indent=1, default=str, allow_nan=False) + "\n"
    csv_path = atomic_write(fetched / "summary.csv", buf.getvalue())
    return csv_path, atomic_write(fetched / "summary.json", text)


def human_duration(seconds: Any) -> str:
    """'45 s', '1 min 05 s', '2 h 03 min 10 s'; '' when unknown."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return ""
    hours, rest = divmod(max(0, round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _text(value: Any) -> str:
    """A value as escaped HTML text."""
    return escape(_cell(value))


def _colour(i: int) -> str:
    return PALETTE[i] if i < len(PALETTE) else f"hsl({i * 137.508 % 360:.0f},65%,40%)"


def _points(values: list[float]) -> list[tuple[int, float]]:
    """(epoch, value) of the finite values, evenly downsampled to MAX_POINTS."""
    pts = [(i + 1, v) for i, v in enumerate(values) if math.isfinite(v)]
    if len(pts) <= MAX_POINTS:
        return pts
    step = (len(pts) - 1) / (MAX_POINTS - 1)
    return [pts[round(k * step)] for k in range(MAX_POINTS)]


def _scale(v: float, lo: float, hi: float, a: float, b: float) -> float:
    """``v`` from [lo, hi] to [a, b]; the middle when the range is empty."""
    return (a + b) / 2 if hi <= lo else a + (v - lo) / (hi - lo) * (b - a)


def _plot(name: str, series: list[tuple[str, str, list[tuple[int, float]]]]) -> str:
    """One SVG plot (with an HTML legend) of the curve ``name`` of several tasks."""
    width, height, left, right, top, bottom = 520, 260, 70, 12, 12, 40
    xs = [x for _, _, pts in series for x, _ in pts]
    ys = [y for _, _, pts in series for _, y in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)

    def px(x: float) -> float:
        return _scale(x, x0, x1, left, width - right)

    def py(y: float) -> float:
        return _scale(y, y0, y1, height - bottom, top)

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(name)}">',
             f'<rect x="{left}" y="{top}" width="{width - left - right}" '
             f'height="{height - top - bottom}" class="frame"/>']
    for y in sorted({y0, y1}):
        parts.append(f'<line x1="{left - 4}" x2="{width - right}" y1="{py(y):.1f}" '
                     f'y2="{py(y):.1f}" class="grid"/><text x="{left - 6}" y="{py(y) + 4:.1f}"'
                     f' text-anchor="end">{y:.4g}</text>')
    for x in sorted({x0, x1}):
        parts.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{height - bottom}" '
                     f'y2="{height - bottom + 4}" class="axis"/><text x="{px(x):.1f}" '
                     f'y="{height - bottom + 16}" text-anchor="middle">{x}</text>')
    mid_y = (top + height - bottom) / 2
    parts.append(f'<text x="{(left + width - right) / 2:.0f}" y="{height - 6}" '
                 f'text-anchor="middle">epoch</text><text x="14" y="{mid_y:.0f}" '
                 f'transform="rotate(-90 14 {mid_y:.0f})" text-anchor="middle">'
                 f'{escape(name)}</text>')
    legend = []
    for label, colour, pts in series:
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                     f'stroke-width="1.5"><title>{escape(label)}</title></polyline>')
        if len(pts) == 1:
            parts.append(f'<circle cx="{px(pts[0][0]):.1f}" cy="{py(pts[0][1]):.1f}" r="3" '
                         f'fill="{colour}"/>')
        legend.append(f'<li><span class="swatch" style="background:{colour}"></span>'
                      f'{escape(label)}</li>')
    parts.append("</svg>")
    return (f'<figure><figcaption>{escape(name)}</figcaption>{"".join(parts)}'
            f'<ul class="legend">{"".join(legend)}</ul></figure>')


def _plots(rows: list[Row], fetched: Path, varying: list[str]) -> list[str]:
    """The plots of every curve name any task has (colours fixed per task)."""
    by_name: dict[str, list[tuple[str, str, list[tuple[int, float]]]]] = {}
    for i, row in enumerate(rows):
        params = row.get("params") or {}
        label = ", ".join([f"task {row.get('index')}"] +
                          [f"{k}={_cell(params.get(k))}" for k in varying])
        for name, values in curves(Path(fetched) / "tasks" / str(row.get("index"))).items():
            pts = _points(values)
            if pts:
                by_name.setdefault(name, []).append((label, _colour(i), pts))
    return [_plot(name, series) for name, series in by_name.items()]


CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f0f0f0}td.error{white-space:pre-wrap;
font-family:monospace;max-width:40em}.completed{background:#d9f2d9}.failed{background:#f8d0d0}
.timeout{background:#fbe3c0}.cancelled{background:#e4e4e4}.running{background:#d6e6fa}
.pending{background:#f5f5d0}figure{display:inline-block;margin:1em 1em 0 0;vertical-align:top}
figcaption{font-weight:bold}svg text{font-size:11px}.frame{fill:none;stroke:#999}
.grid{stroke:#ddd}.axis{stroke:#999}.legend{list-style:none;padding:0;font-size:.85em;
max-width:520px}.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.4em}"""


def write_report(rows: list[Row], fetched: Path, *, title: str, varying: list[str]) -> Path:
    """Write ``fetched/report.html`` atomically: the title, a table of the tasks (index,
    ``varying`` parameters, state, duration, node, failing cell, error) and one SVG plot
    per curve name. Returns its path."""
    fetched = Path(fetched)
    states: dict[str, int] = {}
    for row in rows:
        states[str(row.get("state"))] = states.get(str(row.get("state")), 0) + 1
    counts = ", ".join(f"{n} {escape(s)}" for s, n in states.items())
    body = [f"<h1>{escape(title)}</h1>",
            f"<p>{len(rows)} tasks: {counts}</p>" if rows else "<p>no tasks</p>"]
    if rows:
        head = ["index", *varying, "state", "duration", "node", "cell", "error"]
        body.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>")
        for row in rows:
            params = row.get("params") or {}
            state = str(row.get("state") or "")
            css = re.sub(r"[^a-z0-9_-]+", "-", state.lower()) or "unknown"
            cells = [f"<td>{_text(row.get('index'))}</td>"]
            cells += [f"<td>{_text(params.get(k))}</td>" for k in varying]
            cells += [f'<td class="state {css}">{escape(state)}</td>',
                      f"<td>{escape(human_duration(row.get('duration')))}</td>",
                      f"<td>{_text(row.get('node'))}</td>", f"<td>{_text(row.get('cell'))}</td>",
                      f'<td class="error">{_text(row.get("error"))}</td>']
            body.append("<tr>" + "".join(cells) + "</tr>")
        body.append("</table>")
    plots = _plots(rows, fetched, varying)
    if plots:
        body += ["<h2>Training curves</h2>", *plots]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    return atomic_write(fetched / "report.html", page)
