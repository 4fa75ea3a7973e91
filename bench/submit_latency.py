"""Submit latency: time from sbatch to the Jupyter URL, split into SLURM's, Jupyter's and ours.

Drives the library in-process against the local test cluster (as root, tests/cluster/up.sh runs
first; otherwise the cluster must be up) so each
phase can be timestamped: the same calls as `hpc-dl4mic submit StarDist_2D_DL4Mic` (submit,
wait_until_ready, attach), with the image built (or found) before any timing starts.
Each run is paired with an in-run reference: a hand-written flow with OpenSSH (one
ControlMaster, like our one open connection) that sbatches a minimal job starting the same
Jupyter in the same SIF, polls the file the job writes every 0.5 s and adds an ``ssh -L``.

    python bench/submit_latency.py [--runs 5] [--warmup 1] [--no-reference] [--json PATH]

Moments (wall clock; the cluster's file times are corrected by the measured clock offset):
  t0        just before ``sbatch`` is sent (start_session()'s image check and uploads
            come before it and are shown separately)
  job start creation time of the job log (slurmstepd opens it right before the script);
            cross-checked by our own 0.1 s poll of scontrol and by SLURM's StartTime (1 s)
  Jupyter   from its ``apptainer exec`` (the copied notebook's mtime, so the copy
            container's teardown counts as Jupyter's) to the birth of Jupyter's runtime
            file jpserver-*.json (written once it listens)
  connection.json written / read by the client, URL printed (forward open), first HTTP
  200 of /api/status through the tunnel.
Our overhead = (URL - t0) - (job start - t0) - Jupyter start. Target (issue 5): <= 1 s.
Before each run it waits (bounded) for the shared cluster to have no other jobs and idle
CPUs, and reports how busy it was. Jobs are cancelled and their folders removed after each
run (kept, and named, when a run fails).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hpc_dl4mic.errors import HpcDl4micError  # noqa: E402
from hpc_dl4mic.jobs.resources import JobResources  # noqa: E402
from hpc_dl4mic.remote.profiles import Profile  # noqa: E402

TEST_CACHE = Path(os.environ.get("HPC_DL4MIC_TEST_CACHE", "/var/tmp/hpc-dl4mic-test-cache"))
CLUSTER_CACHE = "/var/tmp/hpc-dl4mic-e2e-cluster-cache"
NOTEBOOK = Path("/work/shared/seed-data/zerocostdl4mic/Colab_notebooks/"
                "StarDist_2D_ZeroCostDL4Mic.ipynb")
REQUIREMENTS = REPO / "tests" / "data" / "requirements-small.txt"
CA_CERTS = Path("/usr/local/share/ca-certificates")
TARGET = "StarDist_2D_DL4Mic"
REF_POLL = 0.5  # the hand-written flow polls its ready file every 0.5 s
NAN = float("nan")


class BenchError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ set-up

def cluster_env() -> dict[str, str]:
    """The local cluster's settings; as root, tests/cluster/up.sh runs first (idempotent)."""
    sys.path.insert(0, str(REPO / "bench"))
    from clusterup import ensure_cluster

    return ensure_cluster()


def cluster_profile(env: dict[str, str]) -> Profile:
    """Like the e2e `cluster_profile` fixture."""
    return Profile(name="testcluster", host=env["SSH_HOST"], port=int(env["SSH_PORT"]),
                   user=env["SSH_USER"], identity=env["SSH_KEY"],
                   known_hosts=env["KNOWN_HOSTS"], cache_dir=CLUSTER_CACHE, build="login",
                   resources=JobResources(partition=env.get("GPU_PARTITION", "gpu"),
                                          gres="gpu:1", time="00:30:00"))


def image_inputs():
    """The base SIF (machine-local cache) and the notebook image's build inputs."""
    from hpc_dl4mic.catalogue.config import resolve_target
    from hpc_dl4mic.images.build import build_image, prepare_base_image, prepare_notebook_image
    from hpc_dl4mic.images.cache import ImageCache

    certs = CA_CERTS if any(CA_CERTS.glob("*.crt")) else None
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    base = build_image(prepare_base_image(ca_certs=certs), ImageCache(TEST_CACHE),
                       progress=lambda line: log(f"base: {line}"))
    log(f"base SIF {'cache hit' if base.cached else 'built'}: {base.path}")
    return prepare_notebook_image(resolve_target(TARGET), notebook=NOTEBOOK,
                                  requirements=REQUIREMENTS, base=f"localimage:{base.path}",
                                  ca_certs=certs)


def clock_offset(conn) -> float:
    """Cluster clock minus ours (seconds), from the fastest of a few round trips."""
    best = None
    for _ in range(5):
        t1 = time.time()
        remote = float(conn.run(["date", "+%s.%N"], timeout=30).stdout)
        t2 = time.time()
        if best is None or t2 - t1 < best[0]:
            best = (t2 - t1, remote - (t1 + t2) / 2)
    return best[1]


def remote_times(conn, paths: list[str], offset: float) -> dict[str, tuple[float, float]]:
    """path -> (birth, mtime) in our clock; birth falls back to mtime where unsupported.
    Paths are shell-quoted except a trailing ``*`` glob."""
    words = [shlex.quote(p[:-1]) + "*" if p.endswith("*") else shlex.quote(p) for p in paths]
    result = conn.run(["bash", "-c", f"stat -c '%.9W %.9Y %n' {' '.join(words)}"],
                      check=False, timeout=30)
    out = {}
    for line in result.stdout.splitlines():
        birth, mtime, name = line.split(" ", 2)
        b = float(birth.replace(",", ".")) if birth not in ("0", "-", "?") else 0.0
        m = float(mtime.replace(",", "."))
        out[name] = ((b or m) - offset, m - offset)
    return out


def birth(times: dict, path: str, index: int = 0) -> float:
    """Birth (index 0) or mtime (1) of ``path`` from :func:`remote_times`; NaN if missing."""
    value = times.get(path)
    return value[index] if value else NAN


def find_glob(times: dict, part: str) -> tuple[float, float] | None:
    """The (birth, mtime) of the first file whose path contains ``part``."""
    for name, value in times.items():
        if part in name:
            return value
    return None


def scontrol_seconds(value: str) -> float | None:
    try:
        return time.mktime(time.strptime(value, "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError):
        return None


class StatePoller:
    """Polls ``scontrol show job`` on its own connection until the job leaves PENDING."""

    def __init__(self, conn, interval: float, limit: float = 120.0) -> None:
        self.conn, self.interval, self.limit = conn, interval, limit
        self.first_seen: dict[str, float] = {}
        self.info = None
        self.polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, job_id: str) -> None:
        if self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._run, args=(job_id,), daemon=True)
        self._thread.start()

    def _run(self, job_id: str) -> None:
        from hpc_dl4mic.jobs.slurm import job_info

        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            t1 = time.time()
            try:
                info = job_info(self.conn, job_id)
            except Exception:  # noqa: BLE001 - a lost poll only costs precision
                info = None
            t2 = time.time()
            self.polls += 1
            state = info.state if info else "GONE"
            self.first_seen.setdefault(state, (t1 + t2) / 2)
            if state not in ("PENDING", "CONFIGURING"):
                return
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def running_at(self) -> float | None:
        return self.first_seen.get("RUNNING")


def final_info(conn, job_id: str):
    from hpc_dl4mic.jobs.slurm import job_info

    try:
        return job_info(conn, job_id)
    except Exception:  # noqa: BLE001
        return None


def first_200(url_base: str, token: str, *, timeout: float = 30.0) -> float:
    request = urllib.request.Request(f"{url_base}/api/status",
                                     headers={"Authorization": f"token {token}"})
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
                if response.status == 200:
                    return time.time()
                last = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.02)
    raise BenchError(f"no HTTP 200 from {url_base}/api/status within {timeout:.0f} s: {last}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_load(conn) -> tuple[list[str], float]:
    """(ids of jobs in the queue, CPU busy fraction over 0.5 s) on the shared test cluster."""
    out = conn.run(["bash", "-c", "squeue -h -o %i; echo --; head -1 /proc/stat; sleep 0.5; "
                    "head -1 /proc/stat"], check=False, timeout=30).stdout
    jobs, _, stat = out.partition("--\n")
    try:
        a, b = ([int(x) for x in line.split()[1:]] for line in stat.splitlines()[:2])
        total = sum(b) - sum(a)
        idle = (b[3] + b[4]) - (a[3] + a[4])  # idle + iowait
        return jobs.split(), 1.0 - idle / total if total > 0 else float("nan")
    except (ValueError, IndexError):
        return jobs.split(), float("nan")


def wait_quiet(conn, limit: float, max_busy: float) -> tuple[int, float]:
    """Wait (bounded) until no other job is queued and the CPUs are mostly idle;
    returns (jobs queued, CPU busy fraction) as last seen."""
    deadline = time.monotonic() + limit
    while True:
        jobs, busy = cluster_load(conn)
        if (not jobs and not busy > max_busy) or time.monotonic() >= deadline:
            return len(jobs), busy
        time.sleep(1.0)


def measured(conn, quiet_wait: float, max_busy: float, flow) -> dict:
    """One run of ``flow`` with how busy the shared cluster was around it."""
    before, busy = wait_quiet(conn, quiet_wait, max_busy)
    m = flow()
    after, busy_after = cluster_load(conn)
    m.update(foreign_before=float(before), foreign_after=float(len(after)),
             busy_before=busy, busy_after=busy_after)
    return m


# ------------------------------------------------------------------ our flow

def run_ours(conn, poll_conn, inputs, profile: Profile, *, timeout: float, offset: float,
             state_poll: float) -> dict:
    """One `submit`: the library's calls, in-process, timestamped."""
    from hpc_dl4mic.jobs.slurm import cancel as scancel
    from hpc_dl4mic.sessions.attach import attach, wait_until_ready
    from hpc_dl4mic.sessions.launch import start_session
    from hpc_dl4mic.sessions.options import SubmitOptions
    from hpc_dl4mic.sessions.results import cancel

    m: dict[str, float] = {}
    # SSH round trips per phase: exec channels (each >= 2 round trips: open + exec) and
    # synchronous SFTP requests; on a real cluster multiply by its RTT.
    counts = {f"{ph}_{kind}": 0 for ph in ("prep", "wait") for kind in ("exec", "sftp")}
    counts.update(scontrol=0, read_file=0)
    phase = {"now": "prep"}
    job: dict[str, str] = {}
    said: list[tuple[float, str]] = []
    poller = StatePoller(poll_conn, state_poll)
    sftp = conn.sftp()
    real_run, real_read, real_request = conn.run, conn.read_file, sftp._request

    def count(kind: str) -> None:
        if phase["now"] in ("prep", "wait"):
            counts[f"{phase['now']}_{kind}"] += 1

    def is_sbatch(argv) -> bool:  # plain, or inside submit_text's one `sh -c` command
        return argv[0] == "sbatch" or (argv[:2] == ["sh", "-c"] and "sbatch" in argv[2])

    def run(argv, **kw):
        t1 = time.time()
        if is_sbatch(argv) and "t0" not in m:
            phase["now"] = "sbatch"
        count("exec")
        result = real_run(argv, **kw)
        if is_sbatch(argv) and "t0" not in m:
            m["t0"], m["sbatch_done"] = t1, time.time()
            if result.returncode == 0 and result.stdout.strip():
                job["id"] = result.stdout.strip().split(";")[0]
                m["job_id"] = float(job["id"])
                poller.start(job["id"])
        if phase["now"] == "wait" and argv[0] == "scontrol":
            counts["scontrol"] += 1
        return result

    def read_file(path):
        if phase["now"] == "wait":
            counts["read_file"] += 1
        return real_read(path)

    def request(*a):
        count("sftp")
        return real_request(*a)

    conn.run, conn.read_file, sftp._request = run, read_file, request
    names = [n.split("/", 1)[1] for n in inputs.files if n.startswith("notebooks/")]
    session = None
    stop = threading.Event()
    ready = threading.Event()
    url: dict[str, str] = {}
    errors: list[BaseException] = []
    thread = None
    info = None
    ok = False

    def say(msg: str) -> None:
        said.append((time.time(), msg))

    def on_ready(u: str) -> None:
        m["url"] = time.time()
        url["url"] = u
        ready.set()

    try:
        m["submit"] = time.time()
        session = start_session(inputs, profile, conn, SubmitOptions(ready_timeout=timeout),
                                say=say, notebook=names[0] if names else "")
        m["submit_done"] = time.time()
        phase["now"] = "wait"
        endpoint = wait_until_ready(conn, session, timeout=timeout, say=say)
        m["endpoint"] = time.time()
        phase["now"] = "attach"

        def attach_thread() -> None:
            try:
                attach(conn, session, endpoint, say=say, on_ready=on_ready, stop=stop)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                ready.set()

        thread = threading.Thread(target=attach_thread, daemon=True)
        thread.start()
        if not ready.wait(30) or errors:
            raise BenchError(f"attach did not print a URL: {errors[:1]}")
        base = url["url"].split("/lab?")[0]
        m["http200"] = first_200(base, endpoint.token)
        sd, res = session.session_dir, session.work_results
        times = remote_times(conn, [f"{sd}/job.log", res, f"{sd}/runtime",
                                    f"{res}/{names[0] if names else 'x'}",
                                    f"{sd}/runtime/jpserver-*", f"{sd}/connection.json"],
                             offset)
        m["job_start"] = birth(times, f"{sd}/job.log")
        m["script_start"] = birth(times, res)
        m["runtime_dir"] = birth(times, f"{sd}/runtime")
        m["copy_done"] = birth(times, f"{res}/{names[0]}", 1) if names else m["runtime_dir"]
        jp = find_glob(times, "/runtime/jpserver-")
        m["jupyter_listening"] = jp[0] if jp else NAN
        m["conn_written"] = birth(times, f"{sd}/connection.json")
        if poller.running_at():
            m["running_polled"] = poller.running_at()
        ok = True
    finally:
        stop.set()
        if thread is not None:
            thread.join(10)
        poller.stop()
        phase["now"] = "cleanup"
        del conn.run, conn.read_file, sftp._request  # back to the class's methods
        try:
            if session is not None and session.job_id:
                info = final_info(conn, session.job_id)
                cancel(conn, session, wait=30)
            elif job.get("id"):  # start_session() failed after sbatch
                scancel(conn, job["id"])
        finally:
            if session is not None and ok:
                conn.run(["rm", "-rf", session.session_dir, session.work_results], check=False,
                         timeout=60)
            elif session is not None:
                log(f"run failed: kept {session.session_dir} and {session.work_results} on "
                    "the cluster for inspection")
    if info is not None and (start := scontrol_seconds(info.start_time)):
        m["slurm_start_time"] = start
    m.update({f"n_{k}": float(v) for k, v in counts.items()})
    m["n_state_polls"] = float(poller.polls)
    return m


# ------------------------------------------------------------------ reference flow

class OpenSsh:
    """OpenSSH through one ControlMaster (opened before timing, like our connection)."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.ctl = tmp / "ctl"
        self.opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                     "-o", f"UserKnownHostsFile={env['KNOWN_HOSTS']}", "-o", "ConnectTimeout=10",
                     "-i", env["SSH_KEY"], "-p", env["SSH_PORT"], "-o", f"ControlPath={self.ctl}"]
        self.dest = f"{env['SSH_USER']}@{env['SSH_HOST']}"
        self.master: subprocess.Popen | None = None

    def start(self) -> None:
        self.master = subprocess.Popen(["ssh", "-M", "-N", *self.opts, self.dest],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.master.poll() is not None:
                raise BenchError(f"ssh ControlMaster exited: {self.master.stderr.read()!r}")
            if self.control(["-O", "check"]).returncode == 0:
                return
            time.sleep(0.05)
        raise BenchError("ssh ControlMaster did not come up within 20 s")

    def control(self, args: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", *self.opts, *args, self.dest], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)

    def run(self, command: str, *, input: str | None = None, timeout: float = 30,
            check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ssh", *self.opts, self.dest, command], input=input,
                              capture_output=True, text=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise BenchError(f"ssh {command!r}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def close(self) -> None:
        if self.master is None:
            return
        try:
            self.control(["-O", "exit"])
        except subprocess.TimeoutExpired:
            pass
        try:
            self.master.wait(5)
        except subprocess.TimeoutExpired:
            self.master.kill()
            self.master.wait(5)
        self.master = None


REF_SCRIPT = """#!/bin/bash
#SBATCH --job-name=bench-ref-jupyter
#SBATCH --output={d}/job.log
{sbatch}
set -eu
umask 077
export JUPYTER_RUNTIME_DIR={d}/runtime
mkdir -p {d}/root "$JUPYTER_RUNTIME_DIR"
APPTAINERENV_JUPYTER_TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \\n')
export APPTAINERENV_JUPYTER_TOKEN
HOST=$(hostname)
apptainer exec --nv {image} jupyter lab --no-browser --ip="$HOST" --port=0 \\
    --ServerApp.root_dir={d}/root &
for _ in $(seq 1200); do
    PORT=$(sed -n 's/^ *"port": *\\([0-9]*\\).*/\\1/p' "$JUPYTER_RUNTIME_DIR"/jpserver-*.json \\
           2>/dev/null | head -1)
    [ -n "$PORT" ] && break
    sleep 0.1
done
echo "$HOST $PORT $APPTAINERENV_JUPYTER_TOKEN" > {d}/ready.tmp
mv {d}/ready.tmp {d}/ready
wait
"""


def run_reference(ssh: OpenSsh, conn, image: str, profile: Profile, *, timeout: float,
                  offset: float, state_poll: float) -> dict:
    """The hand-written flow: ssh sbatch, poll the ready file every 0.5 s, ssh -O forward -L."""
    from hpc_dl4mic.jobs.slurm import sbatch_lines

    m: dict[str, float] = {}
    d = f"{conn.home()}/.hpc-dl4mic-bench/ref-{os.getpid()}-{time.time_ns()}"
    script = REF_SCRIPT.format(d=shlex.quote(d), image=shlex.quote(image),
                               sbatch="\n".join(f"#SBATCH {line}"
                                                for line in sbatch_lines(profile)))
    ssh.run(f"mkdir -p -m 700 {shlex.quote(d)}")
    poller = StatePoller(conn, state_poll)
    job_id = ""
    forward = ""
    polls = 0
    ok = False
    try:
        m["t0"] = time.time()
        out = ssh.run("sbatch --parsable", input=script).stdout.strip()
        m["sbatch_done"] = time.time()
        job_id = out.split(";")[0]
        m["job_id"] = float(job_id)
        poller.start(job_id)
        deadline = time.monotonic() + timeout
        ready = ""
        while time.monotonic() < deadline:
            polls += 1
            q = shlex.quote
            got = ssh.run(f"cat {q(d)}/ready 2>/dev/null || squeue -h -j {q(job_id)} -o %T",
                          check=False).stdout.split()
            if len(got) == 3:
                ready = " ".join(got)
                break
            if not got:
                tail = ssh.run(f"tail -20 {q(d)}/job.log", check=False).stdout
                raise BenchError(f"reference job {job_id} ended before Jupyter was ready:\n"
                                 f"{tail}")
            time.sleep(REF_POLL)
        if not ready:
            raise BenchError(f"reference job {job_id}: no ready file after {timeout:.0f} s")
        m["endpoint"] = time.time()
        host, port, token = ready.split()
        local = free_port()
        forward = f"127.0.0.1:{local}:{host}:{port}"
        fwd = ssh.control(["-O", "forward", "-L", forward])
        if fwd.returncode != 0:
            raise BenchError(f"ssh -O forward -L {forward}: {fwd.stderr.strip()}")
        m["url"] = time.time()
        m["http200"] = first_200(f"http://127.0.0.1:{local}", token)
        times = remote_times(conn, [f"{d}/job.log", f"{d}/runtime", f"{d}/runtime/jpserver-*",
                                    f"{d}/ready"], offset)
        m["job_start"] = birth(times, f"{d}/job.log")
        m["runtime_dir"] = birth(times, f"{d}/runtime")
        jp = find_glob(times, "/runtime/jpserver-")
        m["jupyter_listening"] = jp[0] if jp else NAN
        m["conn_written"] = birth(times, f"{d}/ready")
        if poller.running_at():
            m["running_polled"] = poller.running_at()
        ok = True
    finally:
        poller.stop()
        if forward:
            ssh.control(["-O", "cancel", "-L", forward])
        if job_id:
            info = final_info(conn, job_id)
            if info is not None and (start := scontrol_seconds(info.start_time)):
                m["slurm_start_time"] = start
            ssh.run(f"scancel {shlex.quote(job_id)}", check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                state = ssh.run(f"squeue -h -j {shlex.quote(job_id)} -o %T",
                                check=False).stdout.strip()
                if not state:
                    break
                time.sleep(0.5)
        if ok:
            ssh.run(f"rm -rf {shlex.quote(d)}", check=False, timeout=60)
        else:
            log(f"reference run failed: kept {d} on the cluster for inspection")
    m["n_read_file"] = float(polls)
    m["n_state_polls"] = float(poller.polls)
    return m


# ------------------------------------------------------------------ report

def phases(m: dict) -> dict[str, float]:
    """Durations (seconds) from one run's moments."""
    nan = NAN

    def d(a: str, b: str) -> float:
        return m[b] - m[a] if a in m and b in m else nan

    p = {
        "prep": d("submit", "t0"),
        "sbatch": d("t0", "sbatch_done"),
        "queue": d("sbatch_done", "job_start"),
        "running_polled": d("t0", "running_polled"),
        "start_time_1s": (m["slurm_start_time"] - m["t0"]) if "slurm_start_time" in m else nan,
        "preamble": d("job_start", "runtime_dir"),
        "copy": d("runtime_dir", "copy_done"),
        "jupyter": d("copy_done" if "copy_done" in m else "runtime_dir", "jupyter_listening"),
        "script_notice": d("jupyter_listening", "conn_written"),
        "client_notice": d("conn_written", "endpoint"),
        "forward": d("endpoint", "url"),
        "first_request": d("url", "http200"),
        "total_url": d("t0", "url"),
        "total_200": d("t0", "http200"),
        "slurm": d("t0", "job_start"),
        "n_read_file": m.get("n_read_file", nan),
        "n_scontrol": m.get("n_scontrol", nan),
        "n_prep_exec": m.get("n_prep_exec", nan),
        "n_prep_sftp": m.get("n_prep_sftp", nan),
        "n_wait_exec": m.get("n_wait_exec", nan),
        "n_wait_sftp": m.get("n_wait_sftp", nan),
    }
    p["overhead"] = p["total_url"] - p["slurm"] - p["jupyter"]
    return p


ROWS = [  # key, label, whose
    ("prep", "start_session(): image check, dirs, script (before t0; not in totals)", "ours"),
    ("sbatch", "t0 -> sbatch returned (ssh + slurmctld)", "SLURM"),
    ("queue", "sbatch returned -> job started (job log created)", "SLURM"),
    ("running_polled", "  check: t0 -> RUNNING seen by a 0.1 s scontrol poll", "SLURM"),
    ("start_time_1s", "  check: t0 -> scontrol StartTime (1 s resolution)", "SLURM"),
    ("preamble", "job start -> runtime dir made (script preamble)", "ours"),
    ("copy", "notebook copy (an extra apptainer exec cp)", "ours"),
    ("jupyter", "apptainer exec jupyter -> listening (jpserver-*.json)", "Jupyter"),
    ("script_notice", "listening -> connection file written (job script poll)", "ours"),
    ("client_notice", "connection file written -> client has it (client poll)", "ours"),
    ("forward", "client has it -> URL printed (forward open)", "ours"),
    ("first_request", "URL -> first HTTP 200 /api/status through the tunnel", "tunnel"),
    ("total_url", "TOTAL t0 -> URL printed", ""),
    ("total_200", "TOTAL t0 -> first HTTP 200", ""),
    ("slurm", "  of which SLURM (t0 -> job start)", "SLURM"),
    ("overhead", "  of which OURS = total - SLURM - Jupyter", "ours"),
    ("n_read_file", "connection-file reads while waiting (count; ref: ssh cat polls)", ""),
    ("n_scontrol", "scontrol calls while waiting (count)", ""),
    ("n_prep_exec", "start_session() before sbatch: remote commands (count)", ""),
    ("n_prep_sftp", "start_session() before sbatch: synchronous SFTP requests (count)", ""),
    ("n_wait_exec", "waiting for Jupyter: remote commands (count)", ""),
    ("n_wait_sftp", "waiting for Jupyter: synchronous SFTP requests (count)", ""),
]


def summary(values: list[float]) -> tuple[float, float, float] | None:
    vals = [v for v in values if v == v]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def fmt(s: tuple[float, float, float] | None, count: bool = False) -> str:
    if s is None:
        return "-".rjust(22)
    if count:
        return f"{s[0]:6.0f} [{s[1]:.0f}-{s[2]:.0f}]".ljust(22)
    return f"{s[0]:6.3f} s [{s[1]:.2f}-{s[2]:.2f}]".ljust(22)


def report(ours: list[dict], ref: list[dict], offset: float) -> dict:
    po = [phases(m) for m in ours]
    pr = [phases(m) for m in ref]
    print(f"\nSubmit latency, {TARGET} on the local cluster: median [range] of {len(ours)} "
          f"run(s){f' + {len(ref)} reference run(s)' if ref else ''}; cluster clock offset "
          f"{offset * 1000:+.1f} ms")
    print(f"{'phase':<72} {'whose':<8} {'hpc-dl4mic':<22} {'hand-written ref' if ref else ''}")
    out: dict = {"ours": {}, "reference": {}}
    for key, label, whose in ROWS:
        count = key.startswith("n_")
        so = summary([p[key] for p in po])
        sr = summary([p[key] for p in pr]) if pr else None
        out["ours"][key], out["reference"][key] = so, sr
        print(f"{label:<72} {whose:<8} {fmt(so, count)} {fmt(sr, count) if ref else ''}")
    ov = out["ours"]["overhead"]
    runs = sorted([*ours, *ref], key=lambda m: m.get("t0", 0))
    ids = [m["job_id"] for m in runs if "job_id" in m]
    gaps = sum(1 for a, b in zip(ids, ids[1:]) if b - a > 1)
    busy = sum(1 for m in runs if m["foreign_before"] or m["foreign_after"])
    loads = summary([m["busy_before"] for m in runs])
    shown = f"{loads[0]:.0%} [{loads[1]:.0%}-{loads[2]:.0%}]" if loads else "-"
    print(f"\nshared cluster: {busy} of {len(runs)} runs had other jobs queued before/after; "
          f"{gaps} foreign job id(s) interleaved; CPU busy just before a run {shown}")
    print()
    if ov is not None:
        verdict = "PASS" if ov[0] <= 1.0 else "FAIL"
        print(f"OUR OVERHEAD (URL - t0 - SLURM start - Jupyter start): median {ov[0]:.3f} s "
              f"[{ov[1]:.2f}-{ov[2]:.2f}]  target <= 1 s: {verdict}")
    js, slurm = out["ours"]["jupyter"], out["ours"]["slurm"]
    if js and slurm:
        print(f"SLURM's own start (t0 -> job start): median {slurm[0]:.3f} s; Jupyter's own "
              f"start in the SIF: median {js[0]:.3f} s")
    if ref:
        for key, what in (("total_url", "t0 -> URL"), ("total_200", "t0 -> first 200"),
                          ("overhead", "overhead beyond SLURM + Jupyter")):
            a, b = out["ours"][key], out["reference"][key]
            if a and b and b[0] > 0:
                print(f"ratio hpc-dl4mic / hand-written reference, {what}: {a[0] / b[0]:.2f}x "
                      f"({a[0]:.3f} s vs {b[0]:.3f} s)")
        rj = out["reference"]["jupyter"]
        if js and rj:
            print(f"Jupyter start measured in the reference job (no notebook copy before it): "
                  f"{rj[0]:.3f} s vs {js[0]:.3f} s in ours")
    return out


# ------------------------------------------------------------------ main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each flow first")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the hand-written OpenSSH reference flow")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds per run to wait for Jupyter (bounded)")
    parser.add_argument("--state-poll", type=float, default=0.1,
                        help="our own scontrol poll interval while PENDING (0: off)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="pause between runs after a job has ended")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="before each run, wait up to this long for other jobs to leave "
                             "the shared cluster's queue and its CPUs to calm down")
    parser.add_argument("--max-busy", type=float, default=0.25,
                        help="CPU busy fraction (0-1) below which a run may start")
    parser.add_argument("--json", type=Path, help="also write the raw moments here")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="hpc-dl4mic-bench-"))
    os.environ["XDG_STATE_HOME"] = str(tmp / "state")  # sessions stay out of the user's state
    from hpc_dl4mic.images.build import build_for_profile
    from hpc_dl4mic.remote.hosts import open_host

    env = cluster_env()
    profile = cluster_profile(env)
    ssh = None
    try:
        inputs = image_inputs()
        t = time.perf_counter()
        conn = open_host(profile)
        poll_conn = open_host(profile)
        log(f"SSH connection opened in {time.perf_counter() - t:.3f} s (x2; not timed below)")
        with conn, poll_conn:
            image = build_for_profile(inputs, conn, profile, progress=lambda s: log(s))
            log(f"image {'found in the cluster cache' if image.cached else 'built'}: "
                f"{image.path} (done before any timing)")
            offset = clock_offset(conn)
            if not args.no_reference:
                ssh = OpenSsh(env, tmp)
                ssh.start()
            kw = {"timeout": args.timeout, "offset": offset, "state_poll": args.state_poll}
            ours: list[dict] = []
            ref: list[dict] = []
            for i in range(args.warmup + args.runs):
                tag = "warm-up" if i < args.warmup else f"run {i - args.warmup + 1}/{args.runs}"
                flows = [("hpc-dl4mic", ours, lambda: run_ours(conn, poll_conn, inputs,
                                                               profile, **kw))]
                if ssh is not None:
                    flows.append(("reference ", ref, lambda: run_reference(
                        ssh, conn, str(image.path), profile, **kw)))
                for name, sink, flow in flows:
                    m = measured(conn, args.quiet_wait, args.max_busy, flow)
                    p = phases(m)
                    busy = m["foreign_before"] + m["foreign_after"]
                    log(f"{tag} {name}: t0->URL {p['total_url']:.3f} s, ->200 "
                        f"{p['total_200']:.3f} s, overhead {p['overhead']:.3f} s (job "
                        f"{m.get('job_id', 0):.0f}, CPU busy before {m['busy_before']:.0%}"
                        f"{', OTHER JOBS QUEUED' if busy else ''})")
                    if i >= args.warmup:
                        sink.append(m)
                    time.sleep(args.settle)
            out = report(ours, ref, offset)
            if args.json:
                args.json.write_text(json.dumps({"ours": ours, "reference": ref,
                                                 "summary": out, "clock_offset": offset},
                                                indent=1) + "\n")
    except (BenchError, HpcDl4micError, subprocess.TimeoutExpired) as exc:
        print(f"submit_latency: {exc}", file=sys.stderr)
        return 1
    finally:
        if ssh is not None:
            ssh.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
