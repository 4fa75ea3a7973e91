"""GPU: the container's cost on a real GPU. The same CUDA driver API program (hpc-dl4mic's
probe kernel, a saxpy over N floats launched R times) runs on the bare machine and inside an
hpc-dl4mic image with `apptainer exec --nv`, in the same run.

    python bench/gpu.py --image IMAGE.sif [--n 16777216] [--repeat 200] [--runs 5] [--json P]

Reports the kernel time per launch (median of runs), the bandwidth it implies, and the
start-up of `apptainer exec --nv IMAGE python3 -c pass` against `python3 -c pass`; ratios
are bare / container (1.0 = no cost). Needs an NVIDIA GPU, its driver and apptainer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BENCH = """
import ctypes, json, time
cu = Driver()
cu.call("cuInit", 0)
dev = ctypes.c_int()
cu.call("cuDeviceGet", ctypes.byref(dev), 0)
ctx, module, func = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
cu.call("cuCtxCreate_v2", ctypes.byref(ctx), 0, dev)
cu.call("cuModuleLoadData", ctypes.byref(module), ctypes.c_char_p(SAXPY_PTX.encode()))
cu.call("cuModuleGetFunction", ctypes.byref(func), module, b"saxpy")
n, repeat = {n}, {repeat}
dx, dy = ctypes.c_uint64(), ctypes.c_uint64()
cu.call("cuMemAlloc_v2", ctypes.byref(dx), ctypes.c_size_t(4 * n))
cu.call("cuMemAlloc_v2", ctypes.byref(dy), ctypes.c_size_t(4 * n))
cu.call("cuMemsetD32_v2", dx, 0x3f800000, ctypes.c_size_t(n))
cu.call("cuMemsetD32_v2", dy, 0, ctypes.c_size_t(n))
params = [ctypes.c_uint64(dx.value), ctypes.c_uint64(dy.value), ctypes.c_float(1.0),
          ctypes.c_uint32(n)]
argv = (ctypes.c_void_p * 4)(*[ctypes.cast(ctypes.pointer(p), ctypes.c_void_p) for p in params])
def launch():
    cu.call("cuLaunchKernel", func, (n + 255) // 256, 1, 1, 256, 1, 1, 0, None, argv, None)
for _ in range(10):
    launch()
cu.call("cuCtxSynchronize")
t0 = time.perf_counter()
for _ in range(repeat):
    launch()
cu.call("cuCtxSynchronize")
seconds = (time.perf_counter() - t0) / repeat
out = (ctypes.c_float * 4)()
cu.call("cuMemcpyDtoH_v2", out, dy, ctypes.c_size_t(16))
print("BENCH " + json.dumps({{"per_launch_s": seconds, "y0": out[0], "expected": 10 + repeat}}))
"""


def program(n: int, repeat: int) -> str:
    from hpc_dl4mic.gpu.check import probe_source

    return probe_source().split('\nif __name__ == "__main__":')[0] + BENCH.format(
        n=n, repeat=repeat)


def run(argv: list[str]) -> dict:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"{argv[0]} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(line[len("BENCH "):])


def wall(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, timeout=300)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1 << 24)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    code = program(args.n, args.repeat)
    bare = [run([sys.executable, "-c", code]) for _ in range(args.runs)]
    boxed = [run(["apptainer", "exec", "--nv", str(args.image), "python3", "-c", code])
             for _ in range(args.runs)]
    for r in bare + boxed:
        assert abs(r["y0"] - r["expected"]) < 1e-3, r  # y = sum of 1.0 * x over launches
    t_bare = statistics.median(r["per_launch_s"] for r in bare)
    t_box = statistics.median(r["per_launch_s"] for r in boxed)
    gbps = lambda t: 3 * 4 * args.n / t / 1e9  # noqa: E731 - read x, read y, write y
    s_bare = wall([sys.executable, "-c", "pass"], args.runs)
    s_box = wall(["apptainer", "exec", "--nv", str(args.image), "python3", "-c", "pass"],
                 args.runs)
    print(f"saxpy of {args.n} floats, {args.repeat} launches, median of {args.runs} runs")
    print(f"bare machine:       {t_bare * 1e6:8.1f} us per launch ({gbps(t_bare):7.1f} GB/s)")
    print(f"apptainer --nv:     {t_box * 1e6:8.1f} us per launch ({gbps(t_box):7.1f} GB/s)")
    print(f"ratio (bare / container, kernel): {t_bare / t_box:.3f}")
    print(f"start-up: python3 -c pass {s_bare * 1000:.0f} ms, apptainer exec --nv "
          f"{s_box * 1000:.0f} ms")
    if args.json:
        args.json.write_text(json.dumps({
            "n": args.n, "repeat": args.repeat, "bare_s": t_bare, "container_s": t_box,
            "ratio": t_bare / t_box, "startup_bare_s": s_bare, "startup_container_s": s_box},
            indent=1) + "\n")


if __name__ == "__main__":
    main()
