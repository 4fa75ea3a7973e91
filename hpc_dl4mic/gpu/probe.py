"""The GPU probe, run INSIDE the image (``python3 -c`` with this file's text, or as a file):
what the job sees of its GPUs, as one JSON line after ``MARKER``.

Only the standard library is imported at the top; PyTorch and TensorFlow are tried in child
processes with a time limit (TensorFlow's first import can take minutes). The computation
check launches a PTX kernel through the CUDA driver API with ctypes: the driver comes from
``--nv``, the image needs no CUDA toolkit.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

MARKER = "HPC_DL4MIC_GPU_CHECK "
LABELS_FILE = "/.singularity.d/labels.json"
N = 4096
# y[i] = a * x[i] + y[i], one thread per element (PTX ISA 6.0: any GPU since Pascal)
SAXPY_PTX = r"""
.version 6.0
.target sm_50
.address_size 64
.visible .entry saxpy(.param .u64 px, .param .u64 py, .param .f32 a, .param .u32 n)
{
    .reg .pred p; .reg .b32 r<5>; .reg .f32 f<4>; .reg .b64 rd<7>;
    ld.param.u64 rd1, [px]; ld.param.u64 rd2, [py];
    ld.param.f32 f1, [a]; ld.param.u32 r1, [n];
    mov.u32 r2, %ctaid.x; mov.u32 r3, %ntid.x; mov.u32 r4, %tid.x;
    mad.lo.s32 r2, r2, r3, r4;
    setp.ge.u32 p, r2, r1;
    @p bra DONE;
    cvta.to.global.u64 rd3, rd1; cvta.to.global.u64 rd4, rd2;
    mul.wide.u32 rd5, r2, 4;
    add.s64 rd6, rd3, rd5; ld.global.f32 f2, [rd6];
    add.s64 rd6, rd4, rd5; ld.global.f32 f3, [rd6];
    fma.rn.f32 f3, f1, f2, f3;
    st.global.f32 [rd6], f3;
DONE:
    ret;
}
"""

TORCH_CHECK = """
import json, torch
out = {"version": torch.__version__, "cuda": torch.version.cuda,
       "available": torch.cuda.is_available()}
if out["available"]:
    out["device"] = torch.cuda.get_device_name(0)
    a = torch.arange(64 * 64, dtype=torch.float32).reshape(64, 64) / 1000
    got = (a.cuda() @ a.cuda()).cpu()
    out["matmul_ok"] = bool(torch.allclose(got, a @ a, rtol=1e-3, atol=1e-3))
print(json.dumps(out))
"""

TF_CHECK = """
import json, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
info = tf.sysconfig.get_build_info()
gpus = tf.config.list_physical_devices("GPU")
print(json.dumps({"version": tf.__version__, "cuda": info.get("cuda_version", ""),
                  "compute_capabilities": info.get("cuda_compute_capabilities", []),
                  "gpus": len(gpus)}))
"""


def nvidia_smi() -> dict[str, Any]:
    """nvidia-smi's GPUs (name, driver, compute capability, memory) and CUDA version."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {"found": False}
    out: dict[str, Any] = {"found": True, "path": exe}
    try:
        query = subprocess.run(
            [exe, "--query-gpu=name,driver_version,compute_cap,memory.total",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        plain = subprocess.run([exe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return {**out, "error": str(exc)}
    if query.returncode != 0:
        return {**out, "error": (query.stderr or query.stdout).strip()[:300]}
    out["gpus"] = [dict(zip(("name", "driver", "compute_cap", "memory"),
                            (p.strip() for p in line.split(","))))
                   for line in query.stdout.splitlines() if line.strip()]
    match = re.search(r"CUDA Version:\s*([0-9.]+)", plain.stdout)
    out["cuda_version"] = match.group(1) if match else ""
    return out


class Driver:
    """The CUDA driver API through ctypes (``libcuda.so.1`` from ``--nv``)."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libcuda.so.1")

    def call(self, name: str, *args: Any) -> None:
        code = getattr(self.lib, name)(*args)
        if code != 0:
            text = ctypes.c_char_p()
            self.lib.cuGetErrorString(code, ctypes.byref(text))
            raise RuntimeError(f"{name}: error {code} "
                               f"({(text.value or b'?').decode(errors='replace')})")


def driver_check() -> dict[str, Any]:
    """The driver's CUDA version, the devices, and a saxpy kernel checked against the CPU."""
    try:
        cu = Driver()
    except OSError as exc:
        return {"loaded": False, "error": str(exc)}
    out: dict[str, Any] = {"loaded": True}
    try:
        cu.call("cuInit", 0)
        version = ctypes.c_int()
        cu.call("cuDriverGetVersion", ctypes.byref(version))
        out["cuda_version"] = f"{version.value // 1000}.{version.value % 1000 // 10}"
        count = ctypes.c_int()
        cu.call("cuDeviceGetCount", ctypes.byref(count))
        out["devices"] = count.value
        if count.value == 0:
            return out
        dev = ctypes.c_int()
        cu.call("cuDeviceGet", ctypes.byref(dev), 0)
        name = ctypes.create_string_buffer(256)
        cu.call("cuDeviceGetName", name, 256, dev)
        major, minor = ctypes.c_int(), ctypes.c_int()
        cu.call("cuDeviceGetAttribute", ctypes.byref(major), 75, dev)
        cu.call("cuDeviceGetAttribute", ctypes.byref(minor), 76, dev)
        out.update(name=name.value.decode(errors="replace"),
                   compute_cap=f"{major.value}.{minor.value}")
        out["kernel"] = saxpy(cu, dev)
    except Exception as exc:  # noqa: BLE001 - every failure is part of the report
        out["error"] = str(exc)[:500]
    return out


def saxpy(cu: Driver, dev: ctypes.c_int, n: int = N, a: float = 2.0) -> dict[str, Any]:
    """Run the PTX saxpy ``y = a * x + y`` over ``n`` floats on the GPU; compare with the
    same sum on the CPU."""
    ctx, module, func = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
    cu.call("cuCtxCreate_v2", ctypes.byref(ctx), 0, dev)
    try:
        started = time.perf_counter()
        cu.call("cuModuleLoadData", ctypes.byref(module), ctypes.c_char_p(SAXPY_PTX.encode()))
        cu.call("cuModuleGetFunction", ctypes.byref(func), module, b"saxpy")
        x = (ctypes.c_float * n)(*[i * 0.5 for i in range(n)])
        y = (ctypes.c_float * n)(*[float(n - i) for i in range(n)])
        size = ctypes.sizeof(x)
        dx, dy = ctypes.c_uint64(), ctypes.c_uint64()
        cu.call("cuMemAlloc_v2", ctypes.byref(dx), ctypes.c_size_t(size))
        cu.call("cuMemAlloc_v2", ctypes.byref(dy), ctypes.c_size_t(size))
        cu.call("cuMemcpyHtoD_v2", dx, x, ctypes.c_size_t(size))
        cu.call("cuMemcpyHtoD_v2", dy, y, ctypes.c_size_t(size))
        params = [ctypes.c_uint64(dx.value), ctypes.c_uint64(dy.value), ctypes.c_float(a),
                  ctypes.c_uint32(n)]
        argv = (ctypes.c_void_p * 4)(*[ctypes.cast(ctypes.pointer(p), ctypes.c_void_p)
                                       for p in params])
        cu.call("cuLaunchKernel", func, (n + 255) // 256, 1, 1, 256, 1, 1, 0, None, argv, None)
        cu.call("cuCtxSynchronize")
        got = (ctypes.c_float * n)()
        cu.call("cuMemcpyDtoH_v2", got, dy, ctypes.c_size_t(size))
        seconds = time.perf_counter() - started
        cu.call("cuMemFree_v2", dx)
        cu.call("cuMemFree_v2", dy)
        want = [ctypes.c_float(a * x[i] + y[i]).value for i in range(n)]
        bad = sum(1 for i in range(n) if abs(got[i] - want[i]) > 1e-3 * max(1.0, abs(want[i])))
        return {"ok": bad == 0, "elements": n, "mismatches": bad, "seconds": round(seconds, 4),
                "sample": [got[1], want[1]]}
    finally:
        cu.call("cuCtxDestroy_v2", ctx)


def framework(code: str, timeout: float) -> dict[str, Any] | None:
    """Run ``code`` in a child Python; its JSON line, None when the framework is absent."""
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {timeout:.0f} s"}
    if proc.returncode != 0:
        if "ModuleNotFoundError" in proc.stderr:
            return None
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no result"}


def image_labels() -> dict[str, str]:
    try:
        with open(LABELS_FILE, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items() if k.startswith("org.hpc-dl4mic.")}


def probe(framework_timeout: float = 90) -> dict[str, Any]:
    """Everything the check reports, as a dict."""
    env = {k: os.environ.get(k, "") for k in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS",
                                              "SLURM_JOB_ID",
                                              "SLURM_GPUS_ON_NODE", "NVIDIA_VISIBLE_DEVICES")}
    devices = sorted(p for p in os.listdir("/dev") if re.match(r"^nvidia\d+$", p))
    return {"env": env, "dev_nodes": devices, "hostname": os.uname().nodename,
            "nvidia_smi": nvidia_smi(), "driver": driver_check(),
            "torch": framework(TORCH_CHECK, framework_timeout),
            "tensorflow": framework(TF_CHECK, framework_timeout),
            "labels": image_labels(), "python": sys.version.split()[0]}


def main() -> int:
    print(MARKER + json.dumps(probe(), sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
