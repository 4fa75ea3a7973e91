"""Convert the notebooks of all 29 configs that have one, in one process, and time it.

Each notebook is read once, converted in both modes (batch and interactive) with its config's
``sections_to_remove``, validated and written, as a build does. The clock starts before
``hpc_dl4mic.notebooks.convert`` (and so nbformat) is imported; interpreter start-up (~0.04 s) is
not included. CPU time is printed too: on a busy machine it varies less than wall time.
Reference: DL4MicEverywhere's converter, run once per notebook over the same 29 notebooks,
took 14.8 s on this machine (docs: dl4miceverywhere-format.md).

Usage: python bench/convert_all.py [--mode both|batch|interactive] [--out DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REFERENCE_S = 14.8  # DL4MicEverywhere, 29 notebooks
TARGET_S = 1.5
REPO = Path(__file__).resolve().parent.parent


def pairs() -> list[tuple[str, Path, object]]:
    """(config name, notebook path, sections_to_remove) for the configs with a notebook."""
    sys.path.insert(0, str(REPO / "tests"))
    import yaml
    from seeddata import configs_with_notebooks  # the tests' config → seed notebook map

    out = []
    for cfg, nb in configs_with_notebooks():
        block = yaml.safe_load(cfg.read_text())["config"]["dl4miceverywhere"]
        out.append((cfg.parent.name, nb, block.get("sections_to_remove")))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("both", "batch", "interactive"), default="both")
    parser.add_argument("--out", type=Path, help="keep the converted notebooks here")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    modes = ("batch", "interactive") if args.mode == "both" else (args.mode,)
    jobs = pairs()
    sys.path.insert(0, str(REPO))

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        started, cpu_started = time.perf_counter(), time.process_time()
        import hashlib

        from hpc_dl4mic.notebooks.convert import convert, read_notebook, write_notebook

        imported = time.perf_counter()
        per_mode = dict.fromkeys(("read", *modes), 0.0)
        for config, notebook, sections in jobs:
            t0 = time.perf_counter()
            nb = read_notebook(notebook)  # read once, write both modes, as a build does
            sha = hashlib.sha256(notebook.read_bytes()).hexdigest()
            per_mode["read"] += time.perf_counter() - t0
            for mode in modes:
                t0 = time.perf_counter()
                out = convert(nb, mode=mode, sections_to_remove=sections, config_name=config,
                              source_name=notebook.name, source_sha256=sha)
                write_notebook(out, out_dir / f"{config}.{mode}.ipynb")
                per_mode[mode] += time.perf_counter() - t0
        total = time.perf_counter() - started
        cpu = time.process_time() - cpu_started

    n = len(jobs)
    print(f"converted {n} notebooks x {len(modes)} mode(s) ({', '.join(modes)}) "
          f"in {total:.3f} s total (CPU {cpu:.3f} s)")
    print(f"  import of hpc_dl4mic.notebooks.convert: {imported - started:.3f} s")
    for step, seconds in per_mode.items():
        what = "read+hash" if step == "read" else f"{step} (convert+validate+write)"
        print(f"  {what:34s}: {seconds:.3f} s ({seconds / n * 1000:.1f} ms per notebook)")
    print(f"  per notebook (all modes): {total / n * 1000:.1f} ms")
    print(f"reference: DL4MicEverywhere {REFERENCE_S} s for {n} notebooks (one mode) -> "
          f"{REFERENCE_S / total:.1f}x faster; target <= {TARGET_S} s: "
          f"{'met' if total <= TARGET_S else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({
            "notebooks": n, "modes": list(modes), "total_s": total, "cpu_s": cpu,
            "import_s": imported - started, "per_step_s": per_mode,
            "reference_s": REFERENCE_S, "target_s": TARGET_S}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
