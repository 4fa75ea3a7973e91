"""Sweep submit and status: a 1000-combination `batch` on the local test cluster against a
hand-written loop of 1000 `sbatch` calls over OpenSSH, measured in the same run.

    python bench/sweep.py [--tasks 1000] [--reference-jobs 1000] [--json PATH]

Ours (in-process, the calls `hpc-dl4mic batch` makes; the image is built or found before
timing): validate every combination against the notebook's fields, connect, write the run
folder, submit (target <= 3 s, exactly one sbatch call, one SSH connection), then
`batch status` of it (target <= 2 s, one squeue + one sacct call). Counts come from wrapping
SshHost.open and SshHost.run. The run is cancelled right after.
Reference: `for i in 1..N: ssh -o ControlPath=... HOST sbatch --hold job.sh` through one
OpenSSH ControlMaster opened before timing (a fair, warm loop); its held jobs are cancelled
with one scancel afterwards. Needs root (as the e2e tier); runs tests/cluster/up.sh first
(idempotent).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from submit_latency import CA_CERTS, TEST_CACHE, cluster_env, cluster_profile, log  # noqa: E402

CONFIG = REPO / "tests" / "data" / "mini_sweep" / "configuration.yaml"
NOTEBOOK = REPO / "tests" / "data" / "mini_sweep.ipynb"
REQUIREMENTS = REPO / "tests" / "data" / "requirements-small.txt"


def sweep_text(tasks: int) -> str:
    """A grid of ``tasks`` combinations (10 x 10 x tasks/100)."""
    third = max(1, tasks // 100)
    return ("grid:\n  number_of_epochs: [" + ", ".join(str(i) for i in range(1, 11)) + "]\n"
            "  Multiply_dataset_by: [" + ", ".join(str(i) for i in range(1, 11)) + "]\n"
            "  patch_size: [" + ", ".join(str(16 * i) for i in range(1, third + 1)) + "]\n")


class Counting:
    """Counts SSH connections and remote commands (by program) of the library."""

    def __init__(self) -> None:
        from hpc_dl4mic.remote.connection import SshHost

        self.cls = SshHost
        self.opens = 0
        self.commands: Counter[str] = Counter()
        self._open, self._run = SshHost.open.__func__, SshHost.run

    def __enter__(self) -> Counting:
        counter = self

        def open_(cls, *a, **kw):
            counter.opens += 1
            return counter._open(cls, *a, **kw)

        def run(self, argv, *a, **kw):
            program = argv[0] if argv[0] != "sh" else "sh -c " + " ".join(
                w for w in ("sbatch", "squeue", "sacct", "status.json") if w in " ".join(argv))
            counter.commands[program] += 1
            return counter._run(self, argv, *a, **kw)

        self.cls.open = classmethod(open_)
        self.cls.run = run
        return self

    def __exit__(self, *exc: object) -> None:
        self.cls.open = classmethod(self._open)
        self.cls.run = self._run


def ours(env: dict, tasks: int, work: Path) -> dict:
    import hpc_dl4mic.remote.profiles as profiles
    from hpc_dl4mic.batch.launch import BatchOptions, start_batch
    from hpc_dl4mic.batch.results import cancel_run, run_status
    from hpc_dl4mic.images.build import build_image, prepare_base_image

    certs = CA_CERTS if any(CA_CERTS.glob("*.crt")) else None
    base = build_image(prepare_base_image(ca_certs=certs), __import__(
        "hpc_dl4mic.images.cache", fromlist=["ImageCache"]).ImageCache(TEST_CACHE))
    profile = cluster_profile(env)
    profiles.get_profile = lambda *a, **kw: profile  # the bench's profile, no file
    build = dict(notebook=NOTEBOOK, requirements=REQUIREMENTS, base=f"localimage:{base.path}",
                 ca_certs=certs)
    warm = work / "warm.yaml"
    warm.write_text("rows:\n  - {number_of_epochs: 1}\n")
    log("warm-up: build or find the image (not timed)")
    run = start_batch(str(CONFIG), profile_name="testcluster", run_local=False,
                      profile_file=None, build=build,
                      options=BatchOptions(sweep_file=warm), say=log, build_progress=log)
    cancel_run(run.id)
    sweep = work / "sweep.yaml"
    sweep.write_text(sweep_text(tasks))
    with Counting() as count:
        t0 = time.perf_counter()
        run = start_batch(str(CONFIG), profile_name="testcluster", run_local=False,
                          profile_file=None, build=build,
                          options=BatchOptions(sweep_file=sweep, max_parallel=1),
                          say=lambda _line: None)
        submit_s = time.perf_counter() - t0
        submit_count = (count.opens, dict(count.commands))
        count.opens, count.commands = 0, Counter()
        t1 = time.perf_counter()
        _, rows, accounted = run_status(run.id)
        status_s = time.perf_counter() - t1
        status_count = (count.opens, dict(count.commands))
    cancel_run(run.id)
    return {"tasks": len(run.tasks), "arrays": len(run.jobs), "submit_s": submit_s,
            "submit_ssh_connections": submit_count[0], "submit_commands": submit_count[1],
            "status_s": status_s, "status_rows": len(rows), "accounting": accounted,
            "status_ssh_connections": status_count[0], "status_commands": status_count[1]}


def reference(env: dict, jobs: int, work: Path) -> dict:
    ctl = work / "ctl"
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={env['KNOWN_HOSTS']}",
           "-o", "StrictHostKeyChecking=yes", "-i", env["SSH_KEY"], "-p", env["SSH_PORT"],
           "-o", f"ControlPath={ctl}"]
    dest = f"{env['SSH_USER']}@{env['SSH_HOST']}"
    master = subprocess.Popen([*ssh, "-o", "ControlMaster=yes", "-N", dest],
                              stdin=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if subprocess.run([*ssh, "-O", "check", dest], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        script = "#!/bin/sh\n#SBATCH --output=/dev/null\ntrue\n"
        subprocess.run([*ssh, dest, "cat > bench-sweep-job.sh"], input=script, text=True,
                       check=True)
        ids = []
        t0 = time.perf_counter()
        for _ in range(jobs):
            out = subprocess.run([*ssh, dest, "sbatch", "--parsable", "--hold",
                                  "bench-sweep-job.sh"], capture_output=True, text=True,
                                 check=True)
            ids.append(out.stdout.strip())
        seconds = time.perf_counter() - t0
        subprocess.run([*ssh, dest, "scancel", *ids], check=False)
        return {"jobs": jobs, "submit_s": seconds}
    finally:
        master.terminate()
        master.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--reference-jobs", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = cluster_env()
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    os.environ.setdefault("XDG_STATE_HOME", str(work / "state"))
    os.environ.setdefault("XDG_CACHE_HOME", str(work / "cache"))
    try:
        mine = ours(env, args.tasks, work)
        ref = reference(env, args.reference_jobs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_ref = ref["submit_s"] / ref["jobs"] * mine["tasks"]
    print(f"hpc-dl4mic batch: {mine['tasks']} tasks in {mine['arrays']} array(s): submit "
          f"{mine['submit_s']:.2f} s (target <= 3 s), {mine['submit_ssh_connections']} SSH "
          f"connection(s), commands {mine['submit_commands']}")
    print(f"batch status:     {mine['status_rows']} rows in {mine['status_s']:.2f} s (target "
          f"<= 2 s), {mine['status_ssh_connections']} SSH connection(s), commands "
          f"{mine['status_commands']}, accounting {'on' if mine['accounting'] else 'off'}")
    print(f"reference:        {ref['jobs']} x `ssh sbatch --hold` through a ControlMaster: "
          f"{ref['submit_s']:.2f} s ({per_ref:.2f} s for {mine['tasks']})")
    print(f"ratio (reference / ours, submit): {per_ref / mine['submit_s']:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"ours": mine, "reference": ref}, indent=1) + "\n")


if __name__ == "__main__":
    main()
