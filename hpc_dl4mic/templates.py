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


@functools.lru_cache(maxsize=8)
def site_environment(folder: str):
    """The same environment (filters, StrictUndefined, no autoescape, the built-ins by
    ``FOLDER/NAME``) that also finds templates in ``folder``: a site template's own folder,
    so it may ``{% extends %}``/``{% include %}`` a built-in or a file beside it."""
    import jinja2

    env = environment()
    return env.overlay(loader=jinja2.ChoiceLoader([env.loader, jinja2.FileSystemLoader(folder)]))


def error_location(exc: BaseException) -> tuple[str | None, int | None]:
    """(template file, line) where a Jinja error happened: a syntax error's own, else the
    innermost template frame of the traceback (Jinja rewrites frames to template lines)."""
    import traceback

    import jinja2

    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename:
        return exc.filename, exc.lineno
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.endswith(".py") and not f.filename.startswith("<")]
    return (frames[-1].filename, frames[-1].lineno) if frames else (None, None)
