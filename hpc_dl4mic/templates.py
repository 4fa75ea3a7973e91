"""The one Jinja environment, over the shipped ``definitions/`` (image definitions) and
``slurm_templates/`` (job scripts) folders: StrictUndefined, no autoescape (nothing here is
HTML), values that reach a shell go through the ``q`` filter (:func:`shlex.quote`)."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Mapping

FOLDERS = ("definitions", "slurm_templates")


@functools.lru_cache(maxsize=1)
def environment():  # built on first use and kept: jinja2 costs ~100 ms to import
    """The environment; template names are ``FOLDER/NAME``."""
    import jinja2

    from .resources import data_dir

    loader = jinja2.PrefixLoader({folder: jinja2.FileSystemLoader(str(data_dir(folder)))
                                  for folder in FOLDERS})
    env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined,
                             autoescape=False, keep_trailing_newline=True)
    env.filters["q"] = lambda value: shlex.quote(str(value))
    return env


def render(name: str, context: Mapping[str, object] | None = None, /, **more: object) -> str:
    """Render template ``FOLDER/NAME`` with ``context`` and ``more``."""
    return environment().get_template(name).render({**(context or {}), **more})
