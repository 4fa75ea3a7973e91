"""GPU check: the probe's report (run here, where there is no GPU) and the verdicts for
the usual failures, each one line saying what to do."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hpc_dl4mic.gpu import probe
from hpc_dl4mic.gpu.check import check_resources, probe_source
from hpc_dl4mic.gpu.verdicts import FAIL, OK, SKIP, WARN, parse_report, passed, verdicts
from hpc_dl4mic.jobs.resources import JobResources
from hpc_dl4mic.remote.hosts import local_profile
from hpc_dl4mic.remote.profiles import Profile

H200 = {
    "env": {"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_ID": "12"}, "dev_nodes": ["nvidia0"],
    "nvidia_smi": {"found": True, "cuda_version": "13.0", "gpus": [
        {"name": "NVIDIA H200", "driver": "580.159.04", "compute_cap": "9.0",
         "memory": "143771 MiB"}]},
    "driver": {"loaded": True, "cuda_version": "13.0", "devices": 1, "name": "NVIDIA H200",
               "compute_cap": "9.0", "kernel": {"ok": True, "elements": 4096, "mismatches": 0,
                                                "seconds": 0.002}},
    "torch": {"version": "2.11.0", "cuda": "13.0", "available": True, "device": "NVIDIA H200",
              "matmul_ok": True},
    "tensorflow": None, "labels": {"org.hpc-dl4mic.cuda-version": "11.8.0"},
}


def statuses(report: dict) -> dict[str, str]:
    return {c.what: c.status for c in verdicts(report)}


def test_a_working_gpu_passes_every_check():
    checks = verdicts(H200)
    assert statuses(H200) == {"allocation": OK, "nvidia-smi": OK, "driver": OK,
                              "computation": OK, "pytorch": OK, "tensorflow": SKIP}
    assert passed(checks)
    assert "saxpy of 4096 floats on NVIDIA H200 matches the CPU" in checks[3].detail


def test_no_gpu_requested_says_how_to_request_one():
    report = {**H200, "env": {"SLURM_JOB_ID": "12"}, "dev_nodes": [],
              "nvidia_smi": {"found": False}, "driver": {"loaded": False, "error": "x"}}
    first = verdicts(report)[0]
    assert first.status == FAIL and "--gres gpu:1 or --gpus 1" in first.detail


def test_fake_gpus_without_a_driver_report_no_nvidia_driver():
    report = {**H200, "nvidia_smi": {"found": False},
              "driver": {"loaded": False, "error": "libcuda.so.1: cannot open shared object"}}
    got = statuses(report)
    assert got["allocation"] == OK and got["nvidia-smi"] == FAIL and got["driver"] == FAIL
    assert "no NVIDIA driver" in next(c.detail for c in verdicts(report) if c.what == "driver")
    assert not passed(verdicts(report))


def test_an_image_cuda_newer_than_the_driver_says_pick_an_older_base():
    report = {**H200, "driver": {**H200["driver"], "cuda_version": "11.4"},
              "labels": {"org.hpc-dl4mic.cuda-version": "11.8.0"}}
    driver = next(c for c in verdicts(report) if c.what == "driver")
    assert driver.status == FAIL and "pick an older CUDA base" in driver.detail


def test_a_framework_on_the_cpu_and_tensorflow_without_kernels():
    report = {**H200, "torch": {"version": "2.1", "cuda": None, "available": False},
              "tensorflow": {"version": "2.10.0", "gpus": 1,
                             "compute_capabilities": ["sm_70", "compute_80"]}}
    got = {c.what: c for c in verdicts(report)}
    assert got["pytorch"].status == FAIL and "train on the CPU" in got["pytorch"].detail
    assert got["tensorflow"].status == WARN and "JIT-compiles" in got["tensorflow"].detail
    wrong = {**H200, "driver": {**H200["driver"], "kernel": {"ok": False, "elements": 4096,
                                                            "mismatches": 7}}}
    assert statuses(wrong)["computation"] == FAIL


def test_the_probe_runs_here_without_a_gpu_and_is_found_in_a_log():
    out = subprocess.run([sys.executable, "-c", probe_source()], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    report = parse_report("noise\n" + out + "more noise\n")
    assert report is not None and report["python"] == sys.version.split()[0]
    if not report["driver"]["loaded"]:  # the usual case here: no libcuda
        assert report["driver"]["error"]
    assert parse_report("no marker here\n") is None
    assert json.loads(out[len(probe.MARKER):])["env"].keys() >= {"CUDA_VISIBLE_DEVICES"}


def test_the_check_gets_a_short_walltime_unless_one_is_given():
    p = Profile(name="c", host="h", resources=JobResources(time="04:00:00", gres="gpu:1"))
    assert check_resources(p, JobResources()).time == "00:05:00"
    assert check_resources(p, JobResources(time="1")).time == "1"
    assert check_resources(local_profile(), JobResources()).time is None


@pytest.mark.parametrize("ptx_line", [".version 6.0", ".target sm_50", ".entry saxpy"])
def test_the_kernel_is_plain_ptx(ptx_line):
    assert ptx_line in probe.SAXPY_PTX
