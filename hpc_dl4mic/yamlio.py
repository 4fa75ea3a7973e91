"""Reading the YAML files users write (configuration.yaml, profiles.yaml): one loader, one
error format (``FILE:LINE:COLUMN: not valid YAML: PROBLEM``).

The loader is PyYAML's safe loader without YAML 1.1's base-60 numbers, so ``4:00:00`` stays
the string the user wrote instead of becoming ``14400``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
BOOL_TAG = "tag:yaml.org,2002:bool"
STR_TAG = "tag:yaml.org,2002:str"

# PyYAML's YAML 1.1 int/float patterns without the sexagesimal (base 60) alternatives.
_INT = re.compile(r"""^(?:[-+]?0b[0-1_]+
                    |[-+]?0[0-7_]+
                    |[-+]?(?:0|[1-9][0-9_]*)
                    |[-+]?0x[0-9a-fA-F_]+)$""", re.X)
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X)


class TextLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``1:30`` or ``4:00:00`` as strings, not base-60 numbers."""


TextLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (INT_TAG, FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
TextLoader.add_implicit_resolver(INT_TAG, _INT, list("-+0123456789"))
TextLoader.add_implicit_resolver(FLOAT_TAG, _FLOAT, list("-+0123456789."))


def yaml_error_line(path: Path | str, exc: yaml.YAMLError) -> str:
    """``FILE:LINE:COLUMN: not valid YAML: PROBLEM`` (one line) for a PyYAML error."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or ["?"])[0]
    return f"{where}: not valid YAML: {problem}"


def load_yaml(text: str, path: Path | str, *, error: type[InputError] = InputError,
              prepare: Callable[[yaml.Node], None] | None = None) -> Any:
    """Parse ``text`` (read from ``path``) with :class:`TextLoader`; a syntax error raises
    ``error`` naming ``path:line:column``. ``prepare`` may retag the composed node tree
    before it is turned into Python values."""
    loader = TextLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if prepare is not None:
            prepare(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise error(yaml_error_line(path, exc)) from None
    finally:
        loader.dispose()


def as_written(node: yaml.Node) -> None:
    """Make plain number/boolean scalars in ``node`` (recursively) strings, as written."""
    if isinstance(node, yaml.ScalarNode):
        if node.style is None and node.tag in (INT_TAG, FLOAT_TAG, BOOL_TAG):
            node.tag = STR_TAG
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            as_written(item)
