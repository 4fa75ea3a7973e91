"""Sweeps: the task list of a batch run (pure functions).

A sweep file has ``grid:`` (name -> list of values; every combination) and/or ``rows:``
(a list of name -> value mappings, run besides the grid's). Values given with ``-p NAME
VALUE`` or in a ``-f params.yaml`` apply to every task; a name given both ways, or given
for every task and also by the sweep, is an error. Every value is checked against the
notebook's field specs here, before anything is sent.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, ParameterError

SWEEP_KEYS = ("grid", "rows")
MAX_TASKS = 100_000


@dataclass(frozen=True)
class Sweep:
    """A sweep file's content: ``grid`` (name -> values) and ``rows``; ``source`` names it."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    source: str = "sweep"


@dataclass(frozen=True)
class Task:
    """One task of a run: its index (0-based, the array index) and parameters."""

    index: int
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "params": self.params}


def _load(path: Path) -> Any:
    from ..yamlio import load_yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return load_yaml(text, path)


def _names_ok(mapping: Mapping[Any, Any], where: str) -> None:
    for name in mapping:
        if not isinstance(name, str) or not name.isidentifier():
            raise InputError(f"{where}: {name!r} is not a parameter name (expected a Python "
                             "identifier such as learning_rate)")


def parse_sweep(data: Any, source: str = "sweep") -> Sweep:
    """A :class:`Sweep` from parsed YAML; errors name ``source`` and the entry."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a mapping with 'grid:' and/or 'rows:', "
                         f"got {type(data).__name__}")
    unknown = [k for k in data if k not in SWEEP_KEYS]
    if unknown:
        raise InputError(f"{source}: unknown key {unknown[0]!r}; allowed: grid, rows")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise InputError(f"{source}: grid: expected a mapping NAME: [VALUES], "
                         f"got {type(grid).__name__}")
    _names_ok(grid, f"{source}: grid")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise InputError(f"{source}: grid.{name}: expected a non-empty list of values, "
                             f"got {values!r}")
    rows = data.get("rows") or []
    if not isinstance(rows, list):
        raise InputError(f"{source}: rows: expected a list of mappings, got "
                         f"{type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"{source}: rows[{i}]: expected a mapping NAME: VALUE, got "
                             f"{row!r}")
        _names_ok(row, f"{source}: rows[{i}]")
    return Sweep(grid={k: list(v) for k, v in grid.items()}, rows=[dict(r) for r in rows],
                 source=source)


def load_sweep(path: Path) -> Sweep:
    """Read a sweep YAML file (syntax errors as FILE:LINE:COLUMN)."""
    return parse_sweep(_load(path), str(path))


def load_values_file(path: Path) -> dict[str, Any]:
    """Read a ``-f params.yaml`` file: a mapping NAME: VALUE."""
    data = _load(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping NAME: VALUE, got {type(data).__name__}")
    _names_ok(data, str(path))
    return dict(data)


def common_values(pairs: Sequence[tuple[str, str]], file_values: Mapping[str, Any],
                  file_name: str = "-f") -> dict[str, Any]:
    """The values for every task: ``-p`` pairs and the ``-f`` file's; one name twice is an
    error."""
    out: dict[str, Any] = dict(file_values)
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise InputError(f"-p {name}: given twice; give each parameter once")
        if name in file_values:
            raise InputError(f"-p {name}: also given in {file_name}; give each parameter once")
        seen.add(name)
        out[name] = value
    return out


def combinations(sweep: Sweep) -> list[tuple[str, dict[str, Any]]]:
    """(where, values) of every combination: the grid's product, then the rows."""
    out: list[tuple[str, dict[str, Any]]] = []
    if sweep.grid:
        names = list(sweep.grid)
        count = 1
        for values in sweep.grid.values():
            count *= len(values)
        if count > MAX_TASKS:
            raise InputError(f"{sweep.source}: grid: {count} combinations; at most {MAX_TASKS}")
        for picks in itertools.product(*(range(len(sweep.grid[n])) for n in names)):
            where = "grid " + ", ".join(f"{n}[{i}]" for n, i in zip(names, picks))
            out.append((where, {n: sweep.grid[n][i] for n, i in zip(names, picks)}))
    out.extend((f"rows[{i}]", dict(row)) for i, row in enumerate(sweep.rows))
    return out


def _check(specs: Sequence[Any], values: Mapping[str, Any], where: str) -> dict[str, Any]:
    from ..notebooks.params import validate_values

    try:
        return validate_values(specs, values)
    except ParameterError as exc:
        raise ParameterError(f"{where}: {exc}") from None


def expand(specs: Sequence[Any], sweep: Sweep | None, common: Mapping[str, Any]) -> list[Task]:
    """The run's tasks: every combination of ``sweep`` (or one task) plus ``common``,
    each checked against ``specs``; the first bad value is a one-line error naming where
    it came from, the field and what is allowed."""
    fixed = _check(specs, common, "-p/-f")
    if sweep is None:
        return [Task(0, dict(fixed))]
    for name in [*sweep.grid, *(n for row in sweep.rows for n in row)]:
        if name in common:
            raise InputError(f"{sweep.source}: {name!r} is also given with -p/-f (for every "
                             "task); give it in one place")
    # each grid value once (the error names its entry), then every combination
    for name, values in sweep.grid.items():
        for i, value in enumerate(values):
            _check(specs, {name: value}, f"{sweep.source}: grid.{name}[{i}]")
    combos = combinations(sweep)
    if not combos:
        raise InputError(f"{sweep.source}: no tasks: give 'grid:' and/or 'rows:'")
    tasks = []
    for index, (where, values) in enumerate(combos):
        checked = _check(specs, values, f"{sweep.source}: {where}")
        tasks.append(Task(index, {**fixed, **checked}))
    return tasks


def varying(tasks: Sequence[Task]) -> list[str]:
    """The parameter names whose value differs between tasks, in first-seen order."""
    names: dict[str, None] = {}
    for task in tasks:
        names.update(dict.fromkeys(task.params))
    out = []
    for name in names:
        seen = {repr(t.params.get(name)) for t in tasks}
        if len(seen) > 1:
            out.append(name)
    return out
