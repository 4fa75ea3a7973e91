"""Median wall time of `hpc-dl4mic --help` against `python -c pass` (same interpreter, same run).

    python bench/cli_startup.py [--runs 21] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.060
# As after `pip install` (which compiles .pyc files): a PYTHONDONTWRITEBYTECODE=1 left in the
# environment would make every run recompile the package instead (as in bench/cache_hit.py).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def median_wall(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=ENV)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    reference = median_wall([sys.executable, "-c", "pass"], args.runs)
    ours = median_wall([sys.executable, "-m", "hpc_dl4mic.cli", "--help"], args.runs)
    print(f"python -c pass        median {reference * 1000:7.1f} ms")
    print(f"hpc-dl4mic --help     median {ours * 1000:7.1f} ms  "
          f"(target <= {TARGET_S * 1000:.0f} ms)")
    overhead = 1000 * (ours - reference)
    print(f"ratio                 {ours / reference:7.2f}x   overhead {overhead:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps({
            "runs": args.runs, "help_s": ours, "python_pass_s": reference,
            "ratio": ours / reference, "target_s": TARGET_S}, indent=1) + "\n")


if __name__ == "__main__":
    main()
