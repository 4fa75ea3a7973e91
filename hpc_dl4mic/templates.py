"""The one Jinja environment, over the shipped ``definitions/`` (image definitions) and
``slurm_templates/`` (job scripts) folders: StrictUndefined, no autoescape (nothing here is
HTML), values that reach a shell go through the ``q`` filter (:func:`shlex.quote`)."""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Mapping

FOLDERS = ("definitions", "slurm_templates")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(value: object) -> str:
    """``value`` for a comment or a text line of a recipe: control characters (line breaks
    included) become ``?``, so nothing a value holds can start a line of its own."""
    return CONTROL.sub("?", str(value))


def sbatch_quote(value: object) -> str:
    """``value`` quoted for an ``#SBATCH`` line: sbatch reads single quotes as the shell
    does, but a backslash or a double quote inside them breaks its parse, and a line break
    would end the comment (the rest would be shell code)."""
    from .errors import InputError

    text = str(value)
    if CONTROL.search(text) or '"' in text or "\\" in text:
        raise InputError(f"{text!r}: a value of an #SBATCH line may not contain a double "
                         "quote, a backslash or a control character")
    return shlex.quote(text)


def docker_quote(value: object) -> str:
    """``value`` as a double-quoted Dockerfile word (LABEL, ENV): backslash, double quote and
    ``$`` escaped (Docker expands variables there); line breaks are refused."""
    from .errors import InputError

    text = str(value)
    if CONTROL.search(text):
        raise InputError(f"{text!r}: a Dockerfile value may not contain a control character")
    return '"' + re.sub(r'([\\"$])', r"\\\1", text) + '"'


def file_word(value: object) -> str:
    """``value`` as a path in ``%files``/``COPY``: Apptainer expands a %files source with a
    shell on the build host (``$(...)`` there runs), and splits at spaces, so only letters,
    digits and ``_./+-`` are allowed."""
    from .errors import InputError

    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9_./+-]+", text):
        raise InputError(f"{text!r}: a file of the image may have only letters, digits and "
                         "_./+- in its path")
    return text


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
    env.filters["sbatch_q"] = sbatch_quote
    env.filters["docker_q"] = docker_quote
    env.filters["line"] = one_line
    env.filters["file_word"] = file_word
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
