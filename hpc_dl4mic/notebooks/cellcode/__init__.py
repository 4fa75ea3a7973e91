"""The code of the generated set-up cells, kept as real Python files and read as text.

The modules of this package are cell templates: never import them (they create folders and
change directory when run). :func:`render` reads one as text (``importlib.resources``) and
makes the cell source from it:

- Template values: a top-level one-line assignment ``NAME = placeholder`` (``'/data'``,
  ``{}``, ``set()``) whose NAME is given gets the given Python source as its value (callers
  build it from ``repr()``), so a template stays valid Python that runs with its defaults.
- Inlining: ``from .MODULE import …  # hpc-dl4mic: inline MODULE.py`` is replaced, together
  with the blank lines around it (which isort wants there), by MODULE.py's text rendered with
  the same values. The import only keeps ruff's view of the names right.

Everything else, comments included, is copied into the notebook as it is.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

_INLINE_RE = re.compile(
    r"(?m)(?:^\n)*^from \.(?P<module>\w+) import [^\n]*# hpc-dl4mic: inline [^\n]*\n(?:\n)*")


@functools.cache
def template(name: str) -> str:
    """The text of ``NAME.py`` in this package, with its inline imports expanded."""
    from importlib.resources import files

    text = files(__name__).joinpath(f"{name}.py").read_text(encoding="utf-8")
    return _INLINE_RE.sub(lambda m: template(m.group("module")), text)


def render(name: str, values: Mapping[str, str]) -> str:
    """The cell source of template ``name``: each ``NAME = …`` line of ``values`` gets the
    given Python source as its value."""
    text = template(name)
    for key, source in values.items():
        pattern = re.compile(rf"(?m)^{re.escape(key)} = .*$")
        found = pattern.findall(text)
        if len(found) != 1:
            raise ValueError(f"cell template {name}.py: {len(found)} lines assign {key}")
        text = pattern.sub(lambda _m, line=f"{key} = {source}": line, text)
    return text
