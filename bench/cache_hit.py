"""Cache hit of `hpc-dl4mic build`: wall time of a second build of the same input, against
references measured in the same run.

    python bench/cache_hit.py [--runs 7] [--cache DIR] [--json PATH]

Needs apptainer (tests/cluster/up.sh installs one) and the offline Debian base in
$HPC_DL4MIC_TEST_CACHE (built on first use, ~2.5 min). The first build of the notebook image
is not timed. References: `hpc-dl4mic --help` (interpreter + CLI start-up) and
`apptainer inspect` of the same image (what a tool that asks apptainer would pay at least).
Target: the cache hit <= 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = REPO.parent / "shared" / "seed-data" / "zerocostdl4mic"
NOTEBOOK = SEED / "Colab_notebooks" / "StarDist_2D_ZeroCostDL4Mic.ipynb"
REQUIREMENTS = REPO / "tests" / "data" / "requirements-small.txt"
CA = Path("/usr/local/share/ca-certificates")


# As after `pip install` (which compiles .pyc files): a PYTHONDONTWRITEBYTECODE=1 left in the
# environment would make every run recompile the package instead.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def median_wall(argv: list[str], runs: int) -> tuple[float, float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=ENV)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/hpc-dl4mic-bench-cache"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("apptainer") is None:
        sys.exit("cache_hit: apptainer not found on PATH (as root, tests/cluster/up.sh "
                 "installs one)")

    from hpc_dl4mic.images.build import build_image, prepare_base_image
    from hpc_dl4mic.images.cache import ImageCache

    ca = CA if any(CA.glob("*.crt")) else None
    test_cache = Path(os.environ.get("HPC_DL4MIC_TEST_CACHE", "/var/tmp/hpc-dl4mic-test-cache"))
    base = build_image(prepare_base_image(ca_certs=ca), ImageCache(test_cache),
                       progress=lambda line: None).path
    build = [sys.executable, "-m", "hpc_dl4mic.cli", "build", "StarDist_2D_DL4Mic", "--base",
             f"localimage:{base}", "--notebook", str(NOTEBOOK), "--requirements",
             str(REQUIREMENTS), "--cache", str(args.cache),
             *(["--ca-certs", str(ca)] if ca else [])]
    print("first build (not timed) ...", file=sys.stderr, flush=True)
    first = subprocess.run(build, check=True, capture_output=True, text=True, env=ENV)
    image = first.stdout.strip().splitlines()[-1]

    hit = median_wall(build, args.runs)
    helpcmd = median_wall([sys.executable, "-m", "hpc_dl4mic.cli", "--help"], args.runs)
    inspect = median_wall(["apptainer", "inspect", "--json", "--labels", image], args.runs)
    print(f"cache hit  `hpc-dl4mic build` median {hit[0]:.3f} s [{hit[1]:.3f}-{hit[2]:.3f}]"
          f"  (target <= 0.3 s: {'met' if hit[0] <= 0.3 else 'NOT met'})")
    print(f"reference  `hpc-dl4mic --help`   median {helpcmd[0]:.3f} s  "
          f"ratio {hit[0] / helpcmd[0]:.2f}x")
    print(f"reference  `apptainer inspect`   median {inspect[0]:.3f} s  "
          f"ratio {hit[0] / inspect[0]:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({
            "runs": args.runs, "cache_hit_s": hit, "help_s": helpcmd, "inspect_s": inspect,
            "target_s": 0.3}, indent=1) + "\n")


if __name__ == "__main__":
    main()
