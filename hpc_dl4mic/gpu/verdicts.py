"""What a GPU probe's report means (pure functions): one :class:`Check` per question, each
failure one line saying what to do. The questions follow the usual ways a GPU job goes
wrong: no GPU requested, no driver through ``--nv``, an image CUDA newer than the driver,
a framework that silently uses the CPU, TensorFlow without kernels for the GPU's compute
capability (it then JIT-compiles for half an hour or more)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from .probe import MARKER

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "-"


@dataclass(frozen=True)
class Check:
    what: str
    status: str  # ok | warn | FAIL | -
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def parse_report(log: str) -> dict[str, Any] | None:
    """The probe's JSON from a job log (the last MARKER line), None when there is none."""
    found = None
    for line in log.splitlines():
        if line.startswith(MARKER):
            try:
                found = json.loads(line[len(MARKER):])
            except ValueError:
                continue
    return found


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in str(text).split(".")[:2]:
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def verdicts(report: dict[str, Any]) -> list[Check]:
    """The checks of one probe report, in the order a person would ask them."""
    env = report.get("env") or {}
    smi = report.get("nvidia_smi") or {}
    driver = report.get("driver") or {}
    labels = report.get("labels") or {}
    visible = env.get("CUDA_VISIBLE_DEVICES", "")
    checks = []
    allocated = bool(visible) or bool(report.get("dev_nodes")) or bool(env.get("SLURM_JOB_GPUS"))
    if allocated:
        where = f"CUDA_VISIBLE_DEVICES={visible}" if visible else \
            "devices " + ", ".join(report.get("dev_nodes") or [])
    elif env.get("SLURM_JOB_ID"):
        where = ("no GPU in this job: request one with --gres gpu:1 or --gpus 1 (or set gres "
                 "or gpus in the profile)")
    else:
        where = "no NVIDIA GPU on this machine (no /dev/nvidia* devices)"
    checks.append(Check("allocation", OK if allocated else FAIL, where))
    gpus = smi.get("gpus") or []
    if smi.get("found") and gpus:
        g = gpus[0]
        checks.append(Check("nvidia-smi", OK, f"{len(gpus)} x {g.get('name')}, driver "
                                              f"{g.get('driver')}, compute capability "
                                              f"{g.get('compute_cap')}, {g.get('memory')}"))
    elif smi.get("found"):
        checks.append(Check("nvidia-smi", FAIL, f"nvidia-smi failed: {smi.get('error', '?')}"))
    else:
        checks.append(Check("nvidia-smi", FAIL if allocated else SKIP,
                            "not in the container: no NVIDIA driver reached it; run on a node "
                            "with the NVIDIA driver, with apptainer --nv (hpc-dl4mic's jobs "
                            "use it), after loading the driver/CUDA module your site needs"))
    if not driver.get("loaded"):
        checks.append(Check("driver", FAIL if allocated else SKIP,
                            "no NVIDIA driver: libcuda.so.1 is not in the container ("
                            f"{str(driver.get('error', ''))[:120]}); check --nv and the node"))
        return checks + _frameworks(report, None)
    have = str(driver.get("cuda_version", ""))
    want = labels.get("org.hpc-dl4mic.cuda-version", "")
    if driver.get("error") and not driver.get("devices"):
        checks.append(Check("driver", FAIL, f"CUDA driver {have or '?'}: "
                                            f"{driver['error'][:200]}"))
    elif want and _version(want) > _version(have):
        checks.append(Check("driver", FAIL, f"the image's CUDA {want} is newer than the "
                                            f"driver's CUDA {have}: pick an older CUDA base "
                                            "(--base) or a node with a newer driver"))
    else:
        checks.append(Check("driver", OK, f"CUDA {have} (image built for CUDA {want or '?'}), "
                                          f"{driver.get('devices', 0)} device(s)"))
    kernel = driver.get("kernel")
    if kernel is None:
        checks.append(Check("computation", FAIL, "no kernel ran: "
                                                 + str(driver.get("error") or "no device")))
    elif kernel.get("ok"):
        checks.append(Check("computation", OK, f"saxpy of {kernel['elements']} floats on "
                                               f"{driver.get('name')} matches the CPU "
                                               f"({kernel['seconds'] * 1000:.1f} ms)"))
    else:
        checks.append(Check("computation", FAIL, f"{kernel.get('mismatches')} of "
                                                 f"{kernel.get('elements')} results differ "
                                                 "from the CPU's: the GPU computes wrongly"))
    return checks + _frameworks(report, driver.get("compute_cap"))


def _frameworks(report: dict[str, Any], compute_cap: str | None) -> list[Check]:
    out = []
    torch = report.get("torch")
    if torch is None:
        out.append(Check("pytorch", SKIP, "not installed in the image"))
    elif torch.get("error"):
        out.append(Check("pytorch", FAIL, f"import failed: {torch['error']}"))
    elif not torch.get("available"):
        out.append(Check("pytorch", FAIL, f"PyTorch {torch.get('version')} sees no GPU: it "
                                          "would train on the CPU (a CPU-only wheel, or CUDA "
                                          f"{torch.get('cuda')} newer than the driver)"))
    else:
        ok = torch.get("matmul_ok", False)
        out.append(Check("pytorch", OK if ok else FAIL,
                         f"PyTorch {torch.get('version')} on {torch.get('device')}"
                         + ("" if ok else ": a matrix product differs from the CPU's")))
    tf = report.get("tensorflow")
    if tf is None:
        out.append(Check("tensorflow", SKIP, "not installed in the image"))
    elif tf.get("error"):
        out.append(Check("tensorflow", FAIL, f"import failed: {tf['error']}"))
    elif not tf.get("gpus"):
        out.append(Check("tensorflow", FAIL, f"TensorFlow {tf.get('version')} sees no GPU: it "
                                             "would train on the CPU"))
    else:
        caps = [str(c).replace("sm_", "").replace("compute_", "")
                for c in tf.get("compute_capabilities") or []]
        want = (compute_cap or "").replace(".", "")
        if want and caps and want not in caps:
            out.append(Check("tensorflow", WARN,
                             f"TensorFlow {tf.get('version')} has no kernels for compute "
                             f"capability {compute_cap} (built for {', '.join(caps)}): the "
                             "first run JIT-compiles for 30 min or more; use a newer "
                             "TensorFlow"))
        else:
            out.append(Check("tensorflow", OK, f"TensorFlow {tf.get('version')}, "
                                               f"{tf.get('gpus')} GPU(s)"))
    return out


def passed(checks: list[Check]) -> bool:
    """No check failed (warnings and skips pass)."""
    return all(c.status != FAIL for c in checks)
