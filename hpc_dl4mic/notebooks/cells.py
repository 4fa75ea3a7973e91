"""The generated cells and the rewrites of ``#@param`` lines for each mode (see
:mod:`.convert`); the set-up cells' code is in :mod:`.cellcode`."""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Sequence
from typing import Any

from .cellcode import render
from .params import PARAM_RE, ParamSpec, parse_param_line, unique_by_name
from .sections import section_headings

PARAMETERS_MARK = "# hpc-dl4mic: parameters cell"
VALUES_FILE = "widget_values.json"


def _code_cell(source: str, *, cid: str, tags: Sequence[str] = (), minor: int = 0,
               meta: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"tags": list(tags)} if tags else {}
    if meta:
        metadata["hpc_dl4mic"] = meta
    cell: dict[str, Any] = {"cell_type": "code", "execution_count": None,
                            "metadata": metadata, "outputs": [], "source": source}
    if minor >= 5:
        cell["id"] = cid
    return cell


def _py(value: Any) -> str:
    """A Python literal for a value (repr, which round-trips for the literal types we hold)."""
    return repr(value)


def _batch_default(spec: ParamSpec) -> Any:
    if spec.type == "raw":
        value = _literal_or_none(spec.default)
        return value if value is not None and not isinstance(value, str) else spec.default
    return spec.default


def _literal_or_none(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _section_titles(cells: list[Any]) -> dict[str, str]:
    return {s.token: s.title for s in section_headings({"cells": cells})}


def _parameters_source(specs: Sequence[ParamSpec], titles: dict[str, str]) -> str:
    lines = [
        PARAMETERS_MARK + " (generated)",
        "# Every #@param field of the notebook with its default; papermill injects given values",
        "# after this cell. A value given for a name applies to every field of that name.",
    ]
    section = None
    for spec in specs:
        if spec.section != section:
            section = spec.section
            title = titles.get(section, "")
            lines.append(f"# --- {section} {title}".rstrip() if section else "# ---")
        hint = "raw (Python expression, text is evaluated)" if spec.type == "raw" else spec.type
        if spec.choices is not None:
            hint += ": one of " + ", ".join(str(c) for c in spec.choices)
            hint += " or your own" if spec.allow_input else ""
        elif spec.type == "slider":
            hint += f": {spec.minimum}..{spec.maximum} step {spec.step}"
        lines.append(f"{spec.name} = {_py(_batch_default(spec))}  # {hint}")
    return "\n".join(lines)


def _rewrite_param_lines(src: str, replace_line) -> str:
    lines = src.split("\n")
    for i, line in enumerate(lines):
        if "@param" not in line or parse_param_line(line) is None:
            continue
        m = PARAM_RE.match(line)
        assert m is not None
        spec_text = m.group("spec").strip()
        lines[i] = replace_line(m, spec_text)
    return "\n".join(lines)


def _form_keys(specs: Sequence[ParamSpec]) -> dict[int, str]:
    """Cell index → form key (section token; '#2', '#3' for further forms of a section)."""
    keys: dict[int, str] = {}
    per_section: dict[str, int] = {}
    for spec in specs:
        if spec.cell_index in keys:
            continue
        base = spec.section or "form"
        per_section[base] = per_section.get(base, 0) + 1
        n = per_section[base]
        keys[spec.cell_index] = base if n == 1 else f"{base}#{n}"
    return keys


def _forms_literal(specs: Sequence[ParamSpec], keys: dict[int, str]) -> str:
    forms: dict[str, list[str]] = {}
    for spec in specs:
        entry = {
            "name": spec.name, "type": spec.type, "default": spec.default,
            "choices": list(spec.choices) if spec.choices is not None else None,
            "min": spec.minimum, "max": spec.maximum, "step": spec.step,
            "allow_input": spec.allow_input,
        }
        forms.setdefault(keys[spec.cell_index], []).append("        " + repr(entry) + ",")
    if not forms:
        return "{}"
    out = ["{"]
    for key, entries in forms.items():
        out.append(f"    {key!r}: [")
        out.extend(entries)
        out.append("    ],")
    out.append("}")
    return "\n".join(out)


def _dirs(data_dir: str, results_dir: str) -> dict[str, str]:
    return {"HPC_DL4MIC_DATA_DIR": _py(data_dir), "HPC_DL4MIC_RESULTS_DIR": _py(results_dir)}


def batch_setup_source(specs: Sequence[ParamSpec], data_dir: str, results_dir: str) -> str:
    """The batch set-up cell (cellcode/batch_setup.py with this notebook's values)."""
    first = unique_by_name(specs)
    defaults = "{\n" + "".join(f"    {s.name!r}: {_py(_batch_default(s))},\n" for s in first) + "}"
    raw = sorted({s.name for s in specs if s.type == "raw"})
    raw_literal = "{" + ", ".join(repr(n) for n in raw) + "}" if raw else "set()"
    values = {**_dirs(data_dir, results_dir), "_HPC_DEFAULTS": defaults, "_HPC_RAW": raw_literal}
    return render("batch_setup", values)


def interactive_setup_source(specs: Sequence[ParamSpec], keys: dict[int, str], data_dir: str,
                             results_dir: str) -> str:
    """The interactive set-up cell (cellcode/interactive_setup.py with this notebook's forms)."""
    values = {**_dirs(data_dir, results_dir), "HPC_DL4MIC_FORMS": _forms_literal(specs, keys)}
    return render("interactive_setup", values)


def to_batch(cells: list[Any], specs: list[ParamSpec], minor: int, data_dir: str,
             results_dir: str) -> list[Any]:
    """The batch cells: parameters cell, set-up cell, then ``cells`` with their form lines
    keeping given values."""
    first = unique_by_name(specs)
    setup = batch_setup_source(specs, data_dir, results_dir)

    def line(m: re.Match, spec_text: str) -> str:
        name, value = m.group("name"), m.group("value")
        return (f"{m.group('indent')}{name} = _hpc_param({name!r}) if {name!r} in "
                f"__hpc_dl4mic_injected__ else {value}  # form field: {spec_text}")

    with_params = {s.cell_index for s in specs}
    for ci in with_params:
        cells[ci]["source"] = _rewrite_param_lines(cells[ci]["source"], line)
    params_cell = _code_cell(_parameters_source(first, _section_titles(cells)),
                             cid="hpc-dl4mic-parameters", tags=["parameters"], minor=minor,
                             meta={"generated": "parameters"})
    setup_cell = _code_cell(setup, cid="hpc-dl4mic-setup", tags=["hpc-dl4mic-setup"],
                            minor=minor, meta={"generated": "setup"})
    return [params_cell, setup_cell, *cells]


def to_interactive(cells: list[Any], specs: list[ParamSpec], minor: int, data_dir: str,
                   results_dir: str) -> list[Any]:
    """The interactive cells: set-up cell, then ``cells`` with a form cell before each one with
    fields and their form lines reading the widgets."""
    keys = _form_keys(specs)
    setup = interactive_setup_source(specs, keys, data_dir, results_dir)
    out: list[Any] = [_code_cell(setup, cid="hpc-dl4mic-setup", tags=["hpc-dl4mic-setup"],
                                 minor=minor, meta={"generated": "setup"})]
    for ci, cell in enumerate(cells):
        key = keys.get(ci)
        if key is not None:
            form_src = (f"# hpc-dl4mic form: edit the fields, then run the next cell "
                        f"(values are kept in {posixpath.join(results_dir, VALUES_FILE)})\n"
                        f"hpc_form({key!r})")
            slug = re.sub(r"[^a-zA-Z0-9-]", "-", key)
            out.append(_code_cell(form_src, cid=f"hpc-dl4mic-form-{slug}",
                                  tags=["hpc-dl4mic-form"], minor=minor,
                                  meta={"generated": "form", "form": key}))

            def line(m: re.Match, spec_text: str, key: str = key) -> str:
                name = m.group("name")
                return (f"{m.group('indent')}{name} = hpc_value({key!r}, {name!r})"
                        f"  # form field: {spec_text} (default: {m.group('value')})")

            cell["source"] = _rewrite_param_lines(cell["source"], line)
        out.append(cell)
    return out


