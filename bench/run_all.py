"""Run every benchmark in bench/ and write one table of their figures.

    python bench/run_all.py [--only NAME,...] [--quick] [--out DIR] [--gpu-image SIF]

Each script runs as a subprocess (its own output goes to stderr) with ``--json PATH``; from
that file one or more rows are taken: the figure, its in-run reference, the ratio
figure / reference and the target the script (and README) state. The table is printed as
markdown on stdout and written to DIR/latest.md and DIR/latest.json (default bench/results/),
with the date and the machine (CPUs, CPU model, Python). ``--quick`` uses the fewest
repetitions that still give a figure. tunnel, submit_latency and sweep need the local test
cluster: as root they run tests/cluster/up.sh first (idempotent), otherwise it must be up;
cache_hit needs apptainer. gpu runs only where ``nvidia-smi -L`` lists a GPU. Not part of
the test run (.ci/run). bench/notebook_matrix.py (every real notebook built and run end to
end: hours) is not in this set; run it on its own.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
DATA = REPO / "tests" / "data"
CA = Path("/usr/local/share/ca-certificates")

Row = dict[str, object]


@dataclass(frozen=True)
class Bench:
    """One script: its arguments (full and --quick) and how its JSON becomes rows."""

    name: str
    script: str
    full: list[str]
    quick: list[str]
    rows: Callable[[dict], list[Row]]
    needs: str = ""  # "gpu": run only where a GPU is present


def row(what: str, figure: float, unit: str, reference: float | None, ref_what: str,
        target: str = "", met: bool | None = None, scale: float = 1.0) -> Row:
    """A table row; figures in ``unit`` after multiplying by ``scale``."""
    ratio = figure / reference if reference else None
    return {"measure": what, "figure": figure * scale, "unit": unit,
            "reference": reference * scale if reference is not None else None,
            "reference_is": ref_what, "ratio": ratio, "target": target, "met": met}


def first(value: object) -> float | None:
    """The median of a ``[median, min, max]`` summary (or a plain number); None if absent."""
    if value is None:
        return None
    return float(value[0]) if isinstance(value, (list, tuple)) else float(value)


def rows_cli(d: dict) -> list[Row]:
    return [row("`hpc-dl4mic --help` wall time (median)", d["help_s"], "ms", d["python_pass_s"],
                "`python -c pass`", f"<= {d['target_s'] * 1000:.0f} ms",
                d["help_s"] <= d["target_s"], 1000)]


def rows_convert(d: dict) -> list[Row]:
    return [row(f"convert {d['notebooks']} notebooks x {len(d['modes'])} modes, one process",
                d["total_s"], "s", d["reference_s"],
                "DL4MicEverywhere's converter (14.8 s, measured once, not in-run)",
                f"<= {d['target_s']} s", d["total_s"] <= d["target_s"])]


def rows_cache(d: dict) -> list[Row]:
    hit = first(d["cache_hit_s"])
    assert hit is not None
    return [row("cache hit of `hpc-dl4mic build` (median)", hit, "s", first(d["help_s"]),
                "`hpc-dl4mic --help`", "<= 0.3 s", hit <= d["target_s"]),
            row("cache hit of `hpc-dl4mic build` (median)", hit, "s", first(d["inspect_s"]),
                "`apptainer inspect` of the image", "<= 0.3 s", hit <= d["target_s"])]


def rows_submit(d: dict) -> list[Row]:
    ours, ref = d["summary"]["ours"], d["summary"]["reference"]
    over = first(ours["overhead"])
    total = first(ours["total_url"])
    out = []
    if total is not None:
        out.append(row("submit: sbatch -> Jupyter URL printed (median)", total, "s",
                       first(ref.get("total_url")), "hand-written OpenSSH + sbatch + poll flow"))
    if over is not None:
        out.append(row("submit: our overhead (URL - SLURM start - Jupyter start)", over, "s",
                       first(ref.get("overhead")), "the same, hand-written flow",
                       "<= 1 s", over <= 1.0))
    return out


def rows_tunnel(d: dict) -> list[Row]:
    ours, ssh = d["results"]["ours"], d["results"]["openssh"]
    tput = d["ratios"]["throughput_ours_over_openssh"]
    lat = d["ratios"]["latency_ours_over_openssh"]
    return [row(f"tunnel throughput, {d['size_mb']} MB (median)", ours["mb_s"], "MB/s",
                ssh["mb_s"], "OpenSSH `ssh -N -L`", ">= 0.9x", tput >= 0.9),
            row("tunnel new-connection latency (median)", ours["median_ms"], "ms",
                ssh["median_ms"], "OpenSSH `ssh -N -L`", "<= 2x", lat <= 2.0)]


def rows_sweep(d: dict) -> list[Row]:
    ours, ref = d["ours"], d["reference"]
    scaled = ref["submit_s"] / ref["jobs"] * ours["tasks"]
    return [row(f"batch submit of {ours['tasks']} combinations", ours["submit_s"], "s", scaled,
                f"`ssh sbatch` x {ours['tasks']} via a ControlMaster"
                + ("" if ref["jobs"] == ours["tasks"] else f" (from {ref['jobs']}, scaled)"),
                "<= 3 s", ours["submit_s"] <= 3.0),
            row(f"batch status of {ours['status_rows']} tasks", ours["status_s"], "s", None,
                "(none in-run)", "<= 2 s", ours["status_s"] <= 2.0)]


def rows_gpu(d: dict) -> list[Row]:
    return [row(f"saxpy kernel per launch in `apptainer exec --nv` ({d['n']} floats)",
                d["container_s"], "us", d["bare_s"], "the same kernel on the bare machine",
                scale=1e6),
            row("start-up `apptainer exec --nv IMAGE python3 -c pass`", d["startup_container_s"],
                "ms", d["startup_bare_s"], "`python3 -c pass`", scale=1000)]


BENCHES = [
    Bench("cli_startup", "cli_startup.py", ["--runs", "21"], ["--runs", "7"], rows_cli),
    Bench("convert_all", "convert_all.py", [], [], rows_convert),
    Bench("cache_hit", "cache_hit.py", ["--runs", "7"], ["--runs", "3"], rows_cache),
    Bench("submit_latency", "submit_latency.py", ["--runs", "5", "--warmup", "1"],
          ["--runs", "2", "--warmup", "1", "--quiet-wait", "60"], rows_submit),
    Bench("tunnel", "tunnel.py", ["--size-mb", "200", "--connections", "200", "--repeat", "3"],
          ["--size-mb", "100", "--connections", "100", "--repeat", "1"], rows_tunnel),
    Bench("sweep", "sweep.py", ["--tasks", "1000", "--reference-jobs", "1000"],
          ["--tasks", "1000", "--reference-jobs", "200"], rows_sweep),
    Bench("gpu", "gpu.py", ["--runs", "5"], ["--runs", "2", "--repeat", "100"], rows_gpu,
          needs="gpu"),
]


def machine() -> dict[str, object]:
    """CPUs, CPU model, Python and OS of this machine."""
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model,
            "python": platform.python_version(), "os": platform.platform(terse=True)}


def gpu_present() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return out.returncode == 0 and "GPU" in out.stdout


def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


def gpu_image(given: Path | None) -> Path:
    """The image bench/gpu.py runs in: ``given``, else tests/data/gpu_saxpy built from the
    offline base (both cached by key)."""
    if given is not None:
        return given
    cli = [sys.executable, "-m", "hpc_dl4mic.cli"]
    certs = ["--ca-certs", str(CA)] if any(CA.glob("*.crt")) else []
    test_cache = os.environ.get("HPC_DL4MIC_TEST_CACHE", "/var/tmp/hpc-dl4mic-test-cache")
    env = child_env()
    base = subprocess.run([*cli, "base", "--cache", test_cache, *certs], check=True, env=env,
                          stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    image = subprocess.run(
        [*cli, "build", str(DATA / "gpu_saxpy" / "configuration.yaml"), "--notebook",
         str(DATA / "gpu_saxpy.ipynb"), "--requirements", str(DATA / "requirements-none.txt"),
         "--base", f"localimage:{base}", "--cache", "/var/tmp/hpc-dl4mic-bench-cache", *certs],
        check=True, env=env, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    return Path(image)


def run_one(bench: Bench, quick: bool, work: Path, gpu_sif: Path | None) -> dict[str, object]:
    """Run one script; its result: status, seconds, rows (or why there are none)."""
    if bench.needs == "gpu" and not gpu_present():
        return {"status": "skipped", "why": "no GPU (`nvidia-smi -L` lists none)", "rows": []}
    out_json = work / f"{bench.name}.json"
    args = list(bench.quick if quick else bench.full)
    if bench.name == "gpu":
        args += ["--image", str(gpu_image(gpu_sif))]
    argv = [sys.executable, str(BENCH / bench.script), *args, "--json", str(out_json)]
    print(f"[run_all {time.strftime('%H:%M:%S')}] {bench.name}: "
          f"{' '.join(['python', f'bench/{bench.script}', *args])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=child_env(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.monotonic() - started
    sys.stderr.write(proc.stdout)
    result: dict[str, object] = {"command": " ".join(argv[1:]), "seconds": round(seconds, 1),
                                 "output": proc.stdout[-4000:]}
    if proc.returncode != 0 or not out_json.is_file():
        return {**result, "status": "failed", "why": f"exit {proc.returncode}: "
                + (proc.stdout.strip().splitlines() or ["no output"])[-1], "rows": []}
    data = json.loads(out_json.read_text())
    try:
        rows = bench.rows(data)
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        return {**result, "status": "failed", "why": f"unexpected JSON: {exc!r}", "rows": [],
                "data": data}
    return {**result, "status": "ok", "rows": rows, "data": data}


def fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        digits = 3 if abs(value) < 10 else 1 if abs(value) < 1000 else 0
        return f"{value:.{digits}f}" + (f" {unit}" if unit else "")
    return str(value)


def markdown(results: dict[str, dict], meta: dict[str, object]) -> str:
    """The table, a line per skipped or failed bench, and the machine."""
    m = meta["machine"]
    assert isinstance(m, dict)
    lines = [f"Benchmarks ({'--quick' if meta['quick'] else 'full'}), {meta['date']}, "
             f"{m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, {m['os']}.", "",
             "| bench | measure | figure | reference | ratio | target |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, res in results.items():
        for r in res["rows"]:
            ref = fmt(r["reference"], str(r["unit"]))
            ref = f"{ref}: {r['reference_is']}" if r["reference"] is not None \
                else str(r["reference_is"])
            target = str(r["target"] or "-")
            if r["met"] is not None:
                target += " (met)" if r["met"] else " (NOT met)"
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
            lines.append(f"| {name} | {r['measure']} | {fmt(r['figure'], str(r['unit']))} | "
                         f"{ref} | {ratio} | {target} |")
    lines.append("")
    lines.append("ratio = figure / reference. Run times: " + ", ".join(
        f"{n} {res['seconds']} s" for n, res in results.items() if "seconds" in res) + ".")
    for name, res in results.items():
        if res["status"] != "ok":
            lines.append(f"- {name}: {res['status']}: {res['why']}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated bench names: "
                        + ",".join(b.name for b in BENCHES))
    parser.add_argument("--quick", action="store_true", help="fewest repetitions")
    parser.add_argument("--out", type=Path, default=BENCH / "results",
                        help="folder for latest.md and latest.json")
    parser.add_argument("--gpu-image", type=Path,
                        help="image for bench/gpu.py (default: tests/data/gpu_saxpy, built)")
    args = parser.parse_args()
    chosen = BENCHES
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - {b.name for b in BENCHES})
        if unknown:
            parser.error(f"unknown bench(es) {', '.join(unknown)}; known: "
                         + ", ".join(b.name for b in BENCHES))
        chosen = [b for b in BENCHES if b.name in names]
    meta: dict[str, object] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick, "machine": machine()}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-run-all-") as tmp:
        for bench in chosen:
            results[bench.name] = run_one(bench, args.quick, Path(tmp), args.gpu_image)
    text = markdown(results, meta)
    print(text, end="")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(text)
    table = [{"bench": name, **r, "date": meta["date"], "machine": meta["machine"]}
             for name, res in results.items() for r in res["rows"]]
    (args.out / "latest.json").write_text(json.dumps(
        {**meta, "rows": table, "benches": results}, indent=1, default=str) + "\n")
    return 1 if any(res["status"] == "failed" for res in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
