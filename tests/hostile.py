"""Hostile strings for the injection tests (hypothesis strategies) and the stubs that stand
in for sbatch, apptainer, module ... when a rendered script is run for real.

Every hostile fragment that a shell, Jinja, sbatch, Apptainer or Docker would interpret
tries to create a file named :data:`CANARY` in the working directory (or to expand a
variable): if a value is ever interpreted instead of arriving literally, the canary
appears, or the stub sees a changed value."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from hypothesis import strategies as st

CANARY = "CANARY-h2"
FRAGMENTS = (
    "'", '"', f"$(touch {CANARY})", f"`touch {CANARY}`", "\n", f"\ntouch {CANARY}\n",
    f";touch {CANARY};", f"&& touch {CANARY}", f"| touch {CANARY}", "{{ 7*7 }}",
    "{% raw %}", "{%", "%}", "$HOME", "${PATH}", "\\", "\\n", "#", "%j", "%", " ", "\t",
    "\r", "*", "?", "~", "-", "--x", "!", "!!", "<", ">", "&", "(", ")", "{", "}", ",", ":",
    "=", "ünïcödé", "€", "😀", "\u202e", "\x1b[31m", "\x7f", f"'; touch {CANARY}; '",
    f"\"; touch {CANARY}; \"", f"\n%post\ntouch {CANARY}\n", f"\nRUN touch {CANARY}\n",
    "\nHPC_DL4MIC_INSTALL\n", f"\n#SBATCH --output=/tmp/{CANARY}\n",
    f"__import__('os').system('touch {CANARY}')",
)
NO_NUL = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


def _joined(parts: list[str]) -> str:
    return "".join(parts)


def hostile(*, min_size: int = 0, slash: bool = True) -> st.SearchStrategy[str]:
    """Strings mixing the hostile fragments with arbitrary text (no NUL: no argv, file or
    YAML value can hold one); now and then a very long one. ``slash=False`` leaves out
    ``/`` (a single path component)."""
    text = st.text(NO_NUL, max_size=12)
    long = st.builds(lambda f, n: f * n, st.sampled_from(FRAGMENTS), st.integers(50, 400))
    mixed = st.lists(st.one_of(st.sampled_from(FRAGMENTS), text), min_size=1, max_size=6)
    strat = st.one_of(st.sampled_from(FRAGMENTS), text, mixed.map(_joined), long)
    if not slash:
        strat = strat.map(lambda s: s.replace("/", "_"))
    return strat.filter(lambda s: len(s) >= min_size)


def word() -> st.SearchStrategy[str]:
    """A hostile path component: no ``/``, not ``.``/``..``, not empty, within the file
    systems' 255-byte limit on a name."""
    return hostile(min_size=1, slash=False).map(lambda s: s.encode()[:200].decode(
        "utf-8", "ignore")).filter(lambda s: s not in ("", ".", ".."))


STUB = """#!/bin/bash
# records its argc and argv (NUL-separated) in a new file of $STUB_DIR; {extra}
f=$(mktemp "$STUB_DIR/{name}.XXXXXX")
printf '%s\\0' "$#" "$@" > "$f"
{body}
"""


def install_stubs(bindir: Path, stub_dir: Path, bodies: dict[str, str]) -> dict[str, str]:
    """Stubs ``NAME`` on ``bindir`` for each entry of ``bodies`` (shell run after recording);
    the environment to run a script with them."""
    bindir.mkdir(parents=True, exist_ok=True)
    stub_dir.mkdir(parents=True, exist_ok=True)
    for name, body in bodies.items():
        path = bindir / name
        path.write_text(STUB.format(name=name, body=body, extra="stub"))
        path.chmod(0o755)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLURM_", "BASH_ENV", "ENV"))}
    return {**clean, "PATH": f"{bindir}:{os.environ['PATH']}", "STUB_DIR": str(stub_dir)}


def calls(stub_dir: Path, name: str) -> list[list[str]]:
    """The argv of every call of stub ``name``."""
    out = []
    for path in sorted(stub_dir.glob(f"{name}.*")):
        data = path.read_bytes().decode("utf-8", "surrogateescape")
        count, *argv = data.split("\0")[:-1]
        assert len(argv) == int(count), (path, data)
        out.append(argv)
    return out


def bash_syntax_ok(text: str, tmp: Path) -> None:
    """``bash -n`` on ``text``; fails with bash's message."""
    script = tmp / "syntax.sh"
    script.write_text(text)
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def canaries(*roots: Path) -> list[Path]:
    """Every canary file under ``roots`` (there must be none)."""
    return [p for root in roots for p in Path(root).rglob(CANARY)]
