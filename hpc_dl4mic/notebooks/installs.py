"""Packages a notebook installs when it runs that its image may lack.

Conversion removes a notebook's ``!pip install …`` lines, as DL4MicEverywhere does: the
image's requirements file stands in for them. When a notebook installs a package that the
requirements file does not list (WGAN's ``!pip install pytorch-lightning==1.6.4``), the image
has it only if another requirement pulls it in, and the notebook stops at the import.
:func:`unlisted_installs` finds such packages before the build, so that a user can add them
to the config's ``hpc_dl4mic.extra_pip``. It reads the notebook as JSON (no nbformat)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .sections import _src, section_headings, section_of_cells

_PIP_INSTALL_RE = re.compile(
    r"^\s*[!%]\s*(?:sudo\s+)?(?:pip3?|python[\d.]*\s+-m\s+pip)\s+install\b(?P<args>.*)$")
_NAME_RE = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?=$|[\s\[<>=!~;@(])")
# pip install options that take a value (the next word)
_VALUE_OPTIONS = frozenset({
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-t", "--target",
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--prefix", "--root",
    "--src", "--upgrade-strategy", "--trusted-host", "--no-binary", "--only-binary",
    "--platform", "--python-version", "--implementation", "--abi", "--log", "--cache-dir",
    "--progress-bar", "--proxy", "--retries", "--timeout", "--exists-action", "--cert",
    "--client-cert", "--report", "--config-settings", "-C", "--global-option"})
_SHELL_PUNCTUATION = frozenset("();<>|&")
# installed in every image whatever its requirements say
_ALWAYS = frozenset({"pip", "setuptools", "wheel"})


@dataclass(frozen=True)
class Install:
    """A package a notebook installs when it runs: section, its title, the specifier."""

    section: str
    title: str
    spec: str

    @property
    def name(self) -> str:
        return canonical_name(_NAME_RE.match(self.spec).group(1))  # type: ignore[union-attr]


def canonical_name(name: str) -> str:
    """PEP 503's normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def install_specs(args: str) -> list[str]:
    """The requirement specifiers of a ``pip install`` line's arguments: options, their
    values, paths, URLs and shell variables left out."""
    lexer = shlex.shlex(args, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # unbalanced quotes: take the words as they are
        words = args.split("#", 1)[0].split()
    specs, skip = [], False
    for word in words:
        if word and all(c in _SHELL_PUNCTUATION for c in word):
            break  # `;`, `&&`, `|`, `>`: the rest is another command or a redirection
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in _VALUE_OPTIONS
        elif not (any(c in word for c in "/$`{") or word.startswith(".")
                  or word.endswith((".whl", ".zip", ".tar.gz"))) and _NAME_RE.match(word):
            specs.append(word)
    return specs


def notebook_installs(nb: Any) -> list[Install]:
    """What ``nb``'s code cells ``pip install`` when they run, in every section: the ones a
    config removes (``1.1. Install key dependencies``) hold the installs that the
    requirements file stands in for."""
    sections = section_of_cells(nb)
    titles = {s.token: s.title for s in section_headings(nb)}
    found = []
    for ci, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        for line in _src(cell).split("\n"):
            m = _PIP_INSTALL_RE.match(line)
            if m:
                found += [Install(sections[ci], titles.get(sections[ci], ""), spec)
                          for spec in install_specs(m.group("args"))]
    return found


def listed_names(requirements_text: str, extra: Sequence[str] = ()) -> set[str]:
    """The canonical project names a requirements file (and ``extra`` specifiers) list."""
    names = set(_ALWAYS)
    for line in [*requirements_text.splitlines(), *extra]:
        m = _NAME_RE.match(line.split("#", 1)[0].strip())
        if m:
            names.add(canonical_name(m.group(1)))
    return names


def unlisted_installs(nb: Any, requirements_text: str, *, extra: Sequence[str] = ()
                      ) -> list[Install]:
    """The notebook's run-time installs that neither the requirements nor ``extra`` (the
    config's ``extra_pip``, the image's Jupyter stack) name, once per package."""
    listed = listed_names(requirements_text, extra)
    out: dict[str, Install] = {}
    for install in notebook_installs(nb):
        if install.name not in listed:
            out.setdefault(install.name, install)
    return list(out.values())


def unlisted_note(installs: Sequence[Install], requirements_name: str) -> str:
    """One line for the user about :func:`unlisted_installs` ('' for none)."""
    if not installs:
        return ""
    what = ", ".join(f"{i.spec} ({i.section or 'top'})" for i in installs[:6]) + (
        f" and {len(installs) - 6} more" if len(installs) > 6 else "")
    it = "them" if len(installs) > 1 else "it"
    return (f"the notebook pip-installs {what} when it runs, which {requirements_name} does "
            f"not list: conversion removes install lines, so the image has {it} only if "
            f"another requirement pulls {it} in (if an import fails, add {it} to the "
            f"config's hpc_dl4mic.extra_pip)")
