"""Colab form fields (``#@param`` lines) of a notebook: parse, list and validate them.

A form field is an ACTIVE code line ``NAME = DEFAULT  #@param SPEC`` (a line whose first
non-blank character is ``#`` is commented out and is not a field). SPEC is an optional
dropdown list ``[...]`` followed by an optional ``{type:"...", min:…, max:…, step:…,
allow-input: true}`` object, then an optional trailing comment. The field's ``type`` is:

- the declared ``type`` (string, number, integer, boolean, slider, raw, date) when given;
- ``dropdown`` for a list without a declared type (a list WITH ``{type:"raw"}`` stays
  ``raw`` and keeps its ``choices``: the choices are expression texts);
- ``raw`` for a bare ``#@param`` or an unknown type.

Defaults are Python values (``ast.literal_eval`` of the text), except for ``raw`` fields,
whose default is the expression TEXT (``"Single_Images"``, ``"8"``): Colab pastes a raw
field's text into the code, so its value only exists in the notebook's namespace. A
non-literal default of another type (never seen in the real notebooks) is kept as text.

Validation (:func:`validate_values`) takes values as a CLI gives them (strings) or as
YAML/JSON gives them (typed), coerces them to the field type and checks dropdown choices
(unless ``allow-input``), slider bounds and steps, booleans (true/false, yes/no, on/off,
1/0) and dates (YYYY-MM-DD). A raw value stays text (it must parse as a Python
expression; the notebook evaluates it where the form line was). A name given once applies
to every field of that name (see ``notebook.py``), so it must fit all of them.
"""

from __future__ import annotations

import ast
import datetime
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ParameterError

TYPES = ("string", "number", "integer", "boolean", "slider", "dropdown", "raw", "date")

# NAME = VALUE  # @param SPEC   (the value may hold '#' inside quotes: only '#@param' ends it)
PARAM_RE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<name>[A-Za-z_]\w*)[ \t]*=[ \t]*(?P<value>.*?)[ \t]*"
    r"#[ \t]*@param\b(?P<spec>.*)$"
)
_MARKDOWN_RE = re.compile(r"^\s*#\s*@markdown\b ?(?P<text>.*)$")
_SPEC_KEY_RE = re.compile(
    r"""\s*(?P<key>[A-Za-z_][\w-]*)\s*:\s*(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,}]+)"""
)
_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


@dataclass(frozen=True)
class ParamSpec:
    """One active ``#@param`` field. ``line_no`` is 1-based within the cell's source."""

    name: str
    section: str
    type: str
    default: Any
    choices: tuple | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    step: int | float | None = None
    allow_input: bool = False
    description: str = ""
    cell_index: int = -1
    line_no: int = 0

    @property
    def is_float_slider(self) -> bool:
        """A slider whose bounds, step or default are not all integers."""
        values = (self.minimum, self.maximum, self.step, self.default)
        return any(isinstance(v, float) and not float(v).is_integer() for v in values)

    def allowed(self) -> str:
        """What this field accepts, as used in error messages ("an integer between 1 and 30")."""
        if self.choices is not None and not self.allow_input:
            shown = ", ".join(_choice_text(c, self.type) for c in self.choices)
            return f"one of {shown}"
        if self.type == "slider":
            kind = "a number" if self.is_float_slider else "an integer"
            text = f"{kind} between {_num(self.minimum)} and {_num(self.maximum)}"
            if self.step not in (None, 1) or (self.step is not None and self.is_float_slider):
                text += f" in steps of {_num(self.step)}"
            return text
        return {
            "string": "a string",
            "number": "a number",
            "integer": "an integer",
            "boolean": "true or false",
            "dropdown": "a string",
            "raw": "a Python expression",
            "date": "a date YYYY-MM-DD",
        }.get(self.type, "a value")


def _num(x: object) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def _choice_text(choice: object, ftype: str) -> str:
    return str(choice) if ftype == "raw" else repr(choice)


_QUOTED = r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"""
_BRACKETED = {"[": re.compile(rf"""\[(?:[^\[\]"']|{_QUOTED})*\]"""),
              "{": re.compile(rf"""\{{(?:[^{{}}"']|{_QUOTED})*\}}""")}


def _scan_bracketed(text: str, opener: str, closer: str) -> tuple[str, str] | None:
    """Split ``text`` (starting with ``opener``) into (bracketed part, rest), minding quotes."""
    if not text.startswith(opener):
        return None
    m = _BRACKETED[opener].match(text)  # no nesting: the usual case, in one regex
    if m:
        return m.group(0), text[m.end():]
    depth, quote, i = 0, "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == opener:
            depth += 1
        elif ch == closer:
            depth -= 1
            if depth == 0:
                return text[: i + 1], text[i + 1 :]
        i += 1
    return None


_SIMPLE_STR_RE = re.compile(r"""^(?:"([^"\\]*)"|'([^'\\]*)')$""")
_INT_RE = re.compile(r"^[+-]?\d+$")
_CONSTANTS = {"True": True, "False": False, "None": None}


def _literal(text: str) -> Any:
    """``ast.literal_eval`` of text; the text itself when it is not a literal."""
    text = text.strip()
    m = _SIMPLE_STR_RE.match(text)  # fast paths for the common cases
    if m:
        return m.group(1) if m.group(1) is not None else m.group(2)
    if _INT_RE.match(text):
        return int(text)
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text.strip()


def _spec_value(text: str) -> Any:
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    return _literal(text)


def parse_param_line(line: str) -> ParamSpec | None:
    """Parse one source line; None unless it is an active ``NAME = VALUE #@param …`` line.

    The returned spec has no section, description or position (see :func:`extract_params`).
    """
    if "@param" not in line:
        return None
    m = PARAM_RE.match(line.rstrip("\r\n"))
    if m is None:
        return None
    value_text = m.group("value")
    spec = m.group("spec").strip()
    choices: tuple | None = None
    listed = _scan_bracketed(spec, "[", "]")
    if listed is not None:
        parsed = _literal(listed[0])
        if isinstance(parsed, list):
            choices = tuple(parsed)
        spec = listed[1].strip()
    options: dict[str, Any] = {}
    braced = _scan_bracketed(spec, "{", "}")
    if braced is not None:
        for km in _SPEC_KEY_RE.finditer(braced[0][1:-1]):
            options[km.group("key").lower()] = _spec_value(km.group("value"))
    declared = options.get("type")
    if isinstance(declared, str) and declared in TYPES and declared != "dropdown":
        ftype = declared
    elif declared is None and choices is not None:
        ftype = "dropdown"
    else:
        ftype = "raw"
    if ftype == "raw":
        default: Any = value_text.strip()
        if choices is not None:
            choices = tuple(str(c) for c in choices)
    else:
        default = _literal(value_text)
    if ftype == "slider" and isinstance(default, (int, float)) and not isinstance(default, bool):
        bounds = (options.get("min"), options.get("max"), options.get("step"))
        if any(isinstance(b, float) and not b.is_integer() for b in bounds):
            default = float(default)
    return ParamSpec(
        name=m.group("name"),
        section="",
        type=ftype,
        default=default,
        choices=choices,
        minimum=_number_or_none(options.get("min")),
        maximum=_number_or_none(options.get("max")),
        step=_number_or_none(options.get("step")),
        allow_input=bool(options.get("allow-input", False)),
    )


def _number_or_none(value: Any) -> int | float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def _clean_markdown(text: str) -> str:
    text = re.sub(r"<[^>]+>", "", text)  # <font size=3> and friends
    text = re.sub(r"^\s*#+\s*", "", text)  # markdown heading marks
    text = text.replace("**", "").replace("__", "")
    return " ".join(text.split())


def describe(lines: Sequence[str], index: int) -> str:
    """The ``#@markdown`` text just above ``lines[index]`` (skipping blanks and other fields)."""
    collected: list[str] = []
    i = index - 1
    while i >= 0:
        line = lines[i]
        md = _MARKDOWN_RE.match(line)
        if md:
            collected.append(_clean_markdown(md.group("text")))
        elif collected:
            break
        elif line.strip() and ("@param" not in line or parse_param_line(line) is None):
            break
        i -= 1
    return " ".join(t for t in reversed(collected) if t)


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def extract_params(nb: Any) -> list[ParamSpec]:
    """Every active ``#@param`` field of a notebook, in document order, with its section."""
    from .sections import section_of_cells

    sections = section_of_cells(nb)
    specs: list[ParamSpec] = []
    for ci, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        src = _source(cell)
        if "@param" not in src:
            continue
        for spec in _cell_params(src):
            specs.append(replace(spec, section=sections[ci], cell_index=ci))
    return specs


@functools.lru_cache(maxsize=1024)
def _cell_params(src: str) -> tuple[ParamSpec, ...]:
    """The fields of one cell's source, with description and line number (cached)."""
    lines = src.splitlines()
    found = []
    for li, line in enumerate(lines):
        if "@param" not in line:
            continue
        spec = parse_param_line(line)
        if spec is not None:
            found.append(replace(spec, description=describe(lines, li), line_no=li + 1))
    return tuple(found)


# --------------------------------------------------------------------------- validation


class _Bad(Exception):
    """A value that does not fit (internal; turned into a ParameterError)."""


def _coerce(spec: ParamSpec, value: Any) -> Any:
    t = spec.type
    if spec.choices is not None and not spec.allow_input:
        return _coerce_choice(spec, value)
    if t in ("string", "dropdown"):
        if isinstance(value, (dict, list, tuple, set)):
            raise _Bad
        return value if isinstance(value, str) else str(value)
    if t == "raw":
        text = value if isinstance(value, str) else repr(value)
        try:
            ast.parse(text.strip(), mode="eval")
        except SyntaxError:
            raise _Bad from None
        return text.strip()
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        low = str(value).strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise _Bad
    if t == "integer":
        return _to_int(value)
    if t == "number":
        if isinstance(spec.default, (tuple, list)):
            seq = _literal(value) if isinstance(value, str) else value
            if isinstance(seq, (tuple, list)) and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in seq):
                return list(seq)  # papermill has no tuple literal; the notebook makes it a tuple
        return _to_number(value)
    if t == "slider":
        number = _to_number(value) if spec.is_float_slider else _to_int(value)
        lo, hi = spec.minimum, spec.maximum
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise _Bad
        if spec.step and lo is not None:
            steps = (number - lo) / spec.step
            if abs(steps - round(steps)) > 1e-6:
                raise _Bad
        return float(number) if spec.is_float_slider else number
    if t == "date":
        text = value.isoformat() if isinstance(value, datetime.date) else str(value).strip()
        try:
            datetime.date.fromisoformat(text)
        except ValueError:
            raise _Bad from None
        return text
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Bad
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        if re.fullmatch(r"[+-]?\d+\.0*", text):
            return int(float(text))
    raise _Bad


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise _Bad
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            raise _Bad from None
    else:
        raise _Bad
    if isinstance(number, float) and not math.isfinite(number):
        raise _Bad
    return number


def _coerce_choice(spec: ParamSpec, value: Any) -> Any:
    choices = spec.choices or ()
    if spec.type == "raw":  # choices are expression texts: match the text ("8" == "8")
        text = (value if isinstance(value, str) else repr(value)).strip()
        if text in choices:
            return text
        raise _Bad
    for c in choices:
        if value == c and type(value) is type(c):
            return c
    text = str(value).strip()
    for c in choices:
        if text == str(c):
            return c
    raise _Bad


def validate_values(specs: Sequence[ParamSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """Check and coerce ``values`` (name → value) against the fields; ParameterError if one fails.

    A name present in several sections must fit every one of its fields; the value returned
    is the one coerced for its first field.
    """
    by_name: dict[str, list[ParamSpec]] = {}
    for spec in specs:
        by_name.setdefault(spec.name, []).append(spec)
    result: dict[str, Any] = {}
    for name, value in values.items():
        fields = by_name.get(name)
        if not fields:
            raise ParameterError(_unknown(name, by_name))
        coerced: list[Any] = []
        for spec in fields:
            try:
                coerced.append(_coerce(spec, value))
            except _Bad:
                where = f" (section {spec.section})" if spec.section else ""
                raise ParameterError(
                    f"parameter {name!r}{where}: expected {spec.allowed()}, got {_shown(value)}"
                ) from None
        result[name] = coerced[0]
    return result


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown(name: str, known: Iterable[str]) -> str:
    import difflib

    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=3)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif names:
        hint = f"it has {len(names)}: " + ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    else:
        hint = "it has no #@param fields"
    return f"unknown parameter {name!r}: the notebook has no such #@param field ({hint})"


# --------------------------------------------------------------------------- listing


def spec_to_dict(spec: ParamSpec) -> dict[str, Any]:
    """A JSON-ready dict of one field (tuples become lists)."""
    data = dict(vars(spec))
    for key in ("choices", "default"):
        if isinstance(data[key], tuple):
            data[key] = list(data[key])
    return data


def to_json(specs: Iterable[ParamSpec], *, indent: int | None = 2) -> str:
    """The fields as a JSON array (for ``hpc-dl4mic params --json``)."""
    return json.dumps([spec_to_dict(s) for s in specs], indent=indent, ensure_ascii=False)


def unique_by_name(specs: Iterable[ParamSpec]) -> list[ParamSpec]:
    """The first field of each name, in document order (the batch parameters cell)."""
    seen: dict[str, ParamSpec] = {}
    for spec in specs:
        seen.setdefault(spec.name, spec)
    return list(seen.values())
