"""The notebook matrix: every config's REAL notebook, built with its REAL requirements file
from an offline Debian base and run headless through `hpc-dl4mic batch` on the local test
cluster, on small synthetic data with tiny training settings.

    python bench/notebook_matrix.py [--only NAME ...] [--rebuild] [--build-only]
                                    [--timeout MIN] [--out DIR]

For each of the 32 configs one row: notebook, framework, image size, build time, run time,
last section reached, outcome (ok / failed at section X with the error / not runnable here
and why). How each notebook is run (data, parameters, skipped sections, where its
predictions land) is its recipe in tests/realnotebooks.py (shared with the CI tier).

- Images are cached by key in the cluster's cache_dir, so a rerun only runs (the build time
  of the run that built an image is kept in the results and shown as "cached, built in …");
  ``--rebuild`` builds again (``build --force``). ``--build-only`` builds and stops (it
  needs no recipe: the config's seed notebook and requirements decide the image).
- Results are written after every notebook (bench/results/notebook_matrix.md and .json):
  an interrupted run still leaves a table; a run with ``--only`` keeps the other rows.
- Needs the local test cluster (tests/cluster/up.sh; as root it is started first), apptainer,
  and PyPI (through the proxy whose CA is in /usr/local/share/ca-certificates) for builds.
  Builds run one at a time. Not part of .ci/run nor of bench/run_all.py's default set.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

CA_CERTS = Path("/usr/local/share/ca-certificates")
TEST_CACHE = Path(os.environ.get("HPC_DL4MIC_TEST_CACHE", "/var/tmp/hpc-dl4mic-test-cache"))
CLUSTER_CACHE = "/var/tmp/hpc-dl4mic-e2e-cluster-cache"
WORK = Path(os.environ.get("HPC_DL4MIC_MATRIX_WORK", "/var/tmp/hpc-dl4mic-notebook-matrix"))
RESULTS = REPO / "bench" / "results"
OFFLINE_SUITES = {"3.9": "bullseye", "3.11": "bookworm"}
NO_BASE = "3.9 bullseye, 3.11 bookworm, 3.13 trixie"
ENDED = ("pending", "running")
_CLONE = ("{what} when the notebook runs: code that no requirements file installs, so an "
          "offline node cannot run it (fetching it at build time, where the login node has "
          "the internet, would be a new build feature)")
NEEDS_AT_RUN = {
    # read from the seed notebooks (hpc-dl4mic params lists these sections)
    "3D-RCAN_DL4Mic": _CLONE.format(
        what="section 1.1. git-clones AiviaCommunity/3D-RCAN and trains and predicts with "
             "its train.py / apply.py"),
    "DecoNoising_2D_DL4Mic": _CLONE.format(
        what="section 1. git-clones juglab/DecoNoising and juglab/PN2V and imports them"),
    "MaskRCNN_DL4Mic": _CLONE.format(
        what="section 1.1. git-clones matterport/Mask_RCNN and imports mrcnn from it"),
    "RetinaNet_DL4Mic": _CLONE.format(
        what="section 1. git-clones tensorflow/models (object_detection) and wgets "
             "pretrained weights"),
    "bioimageio-pytorch": "weights only downloadable: it loads a model from the BioImage "
                          "Model Zoo (the collection, then the model's description and "
                          "weights, by id or DOI) when it runs",
    "bioimageio-tensorflow": "weights only downloadable: it loads a model from the BioImage "
                             "Model Zoo (the collection, then the model's description and "
                             "weights, by id or DOI) when it runs",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ set-up

def machine() -> dict[str, Any]:
    """nproc, RAM, CPU model, GPU (from nvidia-smi -L), Python and OS of this machine."""
    model, ram = platform.processor() or "?", 0
    try:
        model = next(line.split(":", 1)[1].strip()
                     for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
        ram = next(int(line.split()[1]) * 1024
                   for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        pass
    gpu = "none"
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, check=False)
        gpu = "; ".join(out.stdout.split("\n")).strip("; ") or "none"
    return {"nproc": os.cpu_count(), "ram_gib": round(ram / 2**30, 1), "cpu": model,
            "gpu": gpu, "python": platform.python_version(),
            "os": platform.platform(terse=True)}


def write_profile(env: dict[str, str]) -> Path:
    """A profiles file for the local cluster (as the e2e `cluster_profile` fixture)."""
    path = WORK / "profiles.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "profiles:\n  testcluster:\n"
        f"    host: {env['SSH_HOST']}\n    port: {env['SSH_PORT']}\n    user: {env['SSH_USER']}\n"
        f"    identity: {env['SSH_KEY']}\n    known_hosts: {env['KNOWN_HOSTS']}\n"
        f"    cache_dir: {CLUSTER_CACHE}\n    build: login\n"
        f"    partition: {env.get('GPU_PARTITION', 'gpu')}\n    gres: gpu:1\n"
        "    time: '00:30:00'\n")
    return path


def cluster_cache_ready(env: dict[str, str]) -> None:
    """The cluster's image cache exists and belongs to the cluster user (as the e2e tier)."""
    import pwd

    cache = Path(CLUSTER_CACHE)
    cache.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam(env["SSH_USER"])
        shutil.chown(cache, user.pw_uid, user.pw_gid)
        cache.chmod(0o755)


def base_sif(suite: str) -> Path:
    """The offline Debian base of ``suite``, built once into the machine-local test cache
    (a hit when present, as tests/e2e/conftest.py's ``base_sif``)."""
    from hpc_dl4mic.images.build import build_image, prepare_base_image
    from hpc_dl4mic.images.cache import ImageCache

    certs = CA_CERTS if any(CA_CERTS.glob("*.crt")) else None
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    TEST_CACHE.chmod(0o755)
    result = build_image(prepare_base_image(suite, ca_certs=certs), ImageCache(TEST_CACHE),
                         progress=lambda line: log(f"base {suite}: {line}"))
    return result.path


def cli_env() -> dict[str, str]:
    """The CLI's environment: this checkout's code, the bench's own XDG folders."""
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
            "XDG_STATE_HOME": str(WORK / "xdg" / "state"),
            "XDG_CONFIG_HOME": str(WORK / "xdg" / "config"),
            "XDG_CACHE_HOME": str(WORK / "xdg" / "cache")}


def cli(*args: str, timeout: float = 600, echo: bool = False) -> tuple[int, str, str]:
    """Run ``hpc-dl4mic ARGS``: (exit code, stdout, the last 40 lines of stderr). With
    ``echo`` stderr (progress) is passed on as it comes."""
    proc = subprocess.Popen([sys.executable, "-m", "hpc_dl4mic.cli", *args], env=cli_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    tail: collections.deque[str] = collections.deque(maxlen=40)
    assert proc.stderr is not None and proc.stdout is not None
    deadline = time.monotonic() + timeout
    import threading

    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    for line in proc.stderr:
        tail.append(line.rstrip("\n"))
        if echo:
            log(f"  {line.rstrip()}")
        if time.monotonic() > deadline:
            proc.terminate()
            break
    try:
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()) + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    reader.join(timeout=30)
    return code, "".join(out), "\n".join(tail)


# ------------------------------------------------------------------ rows

def framework_of(requirements: Path | None) -> str:
    """tensorflow / pytorch / both / - from a requirements file's package names."""
    if requirements is None or not requirements.is_file():
        return "-"
    names = {m.group(0).lower() for m in (
        re.match(r"[A-Za-z0-9_.\-]+", line.strip())
        for line in requirements.read_text(errors="replace").splitlines()) if m}
    tf = bool(names & {"tensorflow", "tensorflow-gpu", "tensorflow-cpu"})
    torch = bool(names & {"torch", "torchvision"})
    return "tensorflow + pytorch" if tf and torch else \
        "tensorflow" if tf else "pytorch" if torch else "-"


def candidates() -> list[dict[str, Any]]:
    """One entry per config: name, python, notebook, requirements, suite (or None) and why
    it cannot run here (empty when it can)."""
    import yaml
    from seeddata import config_paths, seed_notebook, seed_requirements

    out = []
    for cfg in config_paths():
        block = yaml.safe_load(cfg.read_text())["config"]["dl4miceverywhere"]
        python = str(block.get("python_version", "?"))
        nb, req = seed_notebook(cfg), seed_requirements(cfg)
        why = ""
        if nb is None:
            why = "no notebook in the seed data"
        elif python not in OFFLINE_SUITES:
            why = f"Python {python} has no offline base ({NO_BASE})"
        elif req is None:
            why = "no requirements file in the seed data"
        elif cfg.parent.name in NEEDS_AT_RUN:
            why = NEEDS_AT_RUN[cfg.parent.name]
        out.append({"config": cfg.parent.name, "path": cfg, "python": python,
                    "notebook": nb, "requirements": req,
                    "suite": OFFLINE_SUITES.get(python), "why": why})
    return out


def with_workaround(c: dict[str, Any], recipe: Any) -> dict[str, Any]:
    """The candidate as its recipe runs it: the recipe's requirements file (WGAN's config
    names another notebook's) and, for ``extra_pip``, a copy of the config with those
    packages in its ``hpc_dl4mic.extra_pip``, as a user would work around the defect."""
    if recipe is None:
        return c
    import yaml

    c = {**c, "requirements": recipe.requirements_path()}
    if recipe.extra_pip:
        data = yaml.safe_load(c["path"].read_text())
        data["config"].setdefault("hpc_dl4mic", {})["extra_pip"] = list(recipe.extra_pip)
        path = WORK / "configs" / c["config"] / "configuration.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        os.replace(tmp, path)
        c["path"] = path
    return c


def image_args(c: dict[str, Any], base: Path) -> list[str]:
    """build/batch image options: the real notebook and requirements, the offline base."""
    args = ["--notebook", str(c["notebook"]), "--requirements", str(c["requirements"]),
            "--base", f"localimage:{base}"]
    if any(CA_CERTS.glob("*.crt")):
        args += ["--ca-certs", str(CA_CERTS)]
    return args


def build(c: dict[str, Any], base: Path, profile: Path, rebuild: bool,
          previous: dict[str, Any]) -> dict[str, Any]:
    """Build (or find) the image on the cluster: key, path, size, seconds, cached."""
    log(f"{c['config']}: build")
    start = time.monotonic()
    code, out, err = cli("build", str(c["path"]), "--on", "testcluster", "--profile-file",
                         str(profile), *image_args(c, base), "--json",
                         *(["--force"] if rebuild else []), timeout=5400, echo=True)
    seconds = time.monotonic() - start
    if code != 0:
        return {"ok": False, "seconds": round(seconds, 1), "error": err.strip()[-1500:]}
    result = json.loads(out)
    sif = Path(result["path"])
    size = sif.stat().st_size if sif.is_file() else None  # the cluster is this machine
    info = {"ok": True, "key": result["key"][:16], "path": str(sif), "size": size,
            "cached": bool(result["cached"]), "seconds": round(seconds, 1),
            "built_seconds": None if result["cached"] else round(result["seconds"], 1)}
    old = previous.get("build") or {}
    if info["cached"] and old.get("key") == info["key"]:
        info["built_seconds"] = old.get("built_seconds")
    log(f"{c['config']}: image {info['key']} "
        f"{'cached' if info['cached'] else 'built'} in {seconds:.0f} s, {size} bytes")
    return info


KNOWN_CAUSES = [
    # (pattern in the error, why, and what would remove it)
    (r"cannot import name 'sic' from 'setuptools'",
     "the venv's pip/setuptools are too old for the sdists of the requirements (bullseye's "
     "pip 20.3.4, setuptools 44.1.1); images built since eafa2aa get pip 24.0, setuptools "
     "and wheel first for Pythons before 3.10"),
    (r"Failed building wheel for mpi4py",
     "an mpi4py with no wheel: images built since d913936 get an MPI compiler and "
     "setuptools<69.4 for its build for a pin of mpi4py 3; another pin needs the same"),
    (r"libGL\.so\.1",
     "opencv-python needs libGL.so.1, which the offline Debian base lacks; images built "
     "since ae404f2 get libgl1 and libglib2.0-0 for such requirements"),
    (r"KeyError: 'n_channel_in'",
     "a mismatch of the notebook and its requirements upstream: its 4.1. calls "
     "DenoiSegConfig(X, ...) without n_channel_in, which the denoiseg it pins (0.3.0) "
     "requires"),
    (r"Found no NVIDIA driver|CUDA driver|no CUDA GPUs|GPUAccelerator can not run|"
     r"requested gpu.*only has|GPU.*not available",
     "GPU-only code: the notebook calls CUDA, and this machine has no GPU"),
]


def known_cause(text: str) -> str:
    """The explanation of a failure seen before (:data:`KNOWN_CAUSES`), or ''."""
    return next((why for pattern, why in KNOWN_CAUSES if re.search(pattern, text)), "")


def build_reason(error: str) -> str:
    """The telling line of a failed build's output: the last ``…Error: …`` line (the CLI
    writes its error on one line with ``\\n`` for line breaks), else the last line."""
    lines = [ln.strip() for ln in error.replace("\\n", "\n").splitlines() if ln.strip()]
    found = [ln for ln in lines if re.match(r"(\w+\.)*\w*(Error|Exception)\b:", ln)]
    return " ".join((found or lines or ["?"])[-1].split())[:400]


def last_section(executed: Path) -> tuple[str, str]:
    """(token, title) of the section of the last code cell that ran (or failed)."""
    from hpc_dl4mic.notebooks.sections import section_headings, section_of_cells

    try:
        nb = json.loads(executed.read_text())
    except (OSError, ValueError):
        return "", ""
    tokens = section_of_cells(nb)
    titles = {s.token: s.title for s in section_headings(nb)}
    last = ""
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        state = cell.get("metadata", {}).get("papermill", {}).get("status")
        if state in ("completed", "failed") or cell.get("execution_count"):
            last = tokens[i] or last
    return last, titles.get(last, "")


def wait_run(run_id: str, timeout: float) -> dict[str, Any]:
    """Poll ``batch status`` until the task ends (or ``timeout``); the task's record."""
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    said = ""
    while True:
        code, out, err = cli("batch", "status", run_id, "--json", timeout=120)
        if code == 0:
            tasks = json.loads(out)
            task = tasks[0] if tasks else {}
            now = f"{task.get('state')} {task.get('cell') or ''}"
            if now != said:
                log(f"  {run_id}: {now}")
                said = now
            if task and task.get("state") not in ENDED:
                return task
        if time.monotonic() > deadline:
            cli("batch", "cancel", run_id, timeout=120)
            task["state"] = "bench-timeout"
            return task
        time.sleep(10)


def run(c: dict[str, Any], recipe: Any, base: Path, profile: Path,
        timeout_min: int) -> dict[str, Any]:
    """Write the recipe's data, start the batch run, wait, fetch and judge it."""
    data = WORK / "data" / c["config"]
    if data.exists():
        shutil.rmtree(data)
    recipe.make_data(data)
    log(f"{c['config']}: batch")
    code, out, err = cli("batch", str(c["path"]), "--profile", "testcluster",
                         "--profile-file", str(profile), *image_args(c, base),
                         "--upload", f"{data}:{recipe.upload}", *recipe.batch_args()[4:],
                         "--time", str(timeout_min), timeout=5400, echo=True)
    if code != 0:
        return {"outcome": "failed", "detail": f"batch submit exit {code}: "
                f"{err.strip().splitlines()[-1] if err.strip() else ''}"[:600]}
    run_id = out.strip().splitlines()[-1]
    started = time.monotonic()
    task = wait_run(run_id, timeout_min * 60 + 120)
    wall = time.monotonic() - started
    dest = WORK / "runs" / c["config"] / run_id
    cli("batch", "fetch", run_id, "--dest", str(dest), timeout=1800)
    task_dir = dest / "tasks" / "0"
    status: dict[str, Any] = {}
    try:
        status = json.loads((task_dir / "status.json").read_text())
    except (OSError, ValueError):
        pass
    token, title = last_section(task_dir / "executed.ipynb")
    seconds = (status["end"] - status["start"]) if status.get("end") and status.get(
        "start") else wall
    files = [p for p in task_dir.glob(recipe.predictions) if p.is_file()]
    nonempty = [p for p in files if p.stat().st_size > 0]
    state = task.get("state") or status.get("state")
    error = status.get("error") or {}
    skipped = [s.get("section", "") for s in status.get("skipped") or []]
    row = {"run_id": run_id, "state": state, "run_seconds": round(seconds, 1),
           "last_section": token, "last_section_title": title,
           "predictions": len(nonempty), "skipped_offline": skipped}
    if state == "completed" and nonempty and files == nonempty:
        row.update(outcome="ok", detail=f"{len(nonempty)} prediction file(s) in "
                   f"{recipe.predictions}")
    elif state == "completed":
        row.update(outcome="failed", detail=f"completed, but {recipe.predictions} has "
                   f"{len(files)} file(s), {len(nonempty)} non-empty")
    else:
        message = f"{error.get('name', state)}: {error.get('message', '')}".strip()
        message = " ".join(message.split())[:400]
        cause = known_cause(message)
        row.update(outcome="failed", detail=f"{state} in section {token or '?'} "
                   f"({title[:50]}): {message}" + (f" (cause: {cause})" if cause else ""))
    log(f"{c['config']}: {row['outcome']} (last section {token}) {row['detail'][:200]}")
    return row


# ------------------------------------------------------------------ output

def _size(n: int | None) -> str:
    return "-" if not n else f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _secs(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def build_cell(b: dict[str, Any] | None) -> str:
    if not b:
        return "-"
    if not b.get("ok"):
        return f"failed after {_secs(b.get('seconds'))}"
    if b.get("cached"):
        built = b.get("built_seconds")
        return f"cached (built in {_secs(built)})" if built else "cached"
    return _secs(b.get("built_seconds") or b.get("seconds"))


def outcome_cell(r: dict[str, Any]) -> str:
    outcome = r.get("outcome", "")
    detail = (r.get("detail") or "").replace("|", "\\|").replace("\n", " ")
    if outcome == "ok":
        return "ok, with a workaround of an upstream defect (below)" if r.get(
            "workaround") else "ok"
    if outcome == "not runnable":
        return f"not runnable here: {detail}"
    if outcome == "not run":
        return detail or "not run in this session"
    return f"failed: {detail}"


def run_date(r: dict[str, Any]) -> str:
    """The day a row's batch run started (from its run id), '-' for rows with no run."""
    m = re.search(r"-(\d{4})(\d{2})(\d{2})-\d{6}-", r.get("run_id") or "")
    return "-".join(m.groups()) if m else "-"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [f"Notebook matrix, last written {meta['date']} on {m['nproc']} CPUs ({m['cpu']}), "
             f"{m['ram_gib']} GiB RAM, GPU: {m['gpu']}; Python {m['python']}, {m['os']}. "
             "Rows of earlier runs keep their results (run on: the day of a row's run).",
             "",
             "| notebook | framework | image size | build time | run time | "
             "last section reached | outcome | run on |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        section = r.get("last_section") or "-"
        if r.get("last_section_title"):
            section = f"{section} {r['last_section_title'][:40]}"
        b = r.get("build") or {}
        name = r["config"] if not r.get("notebook") else f"{r['config']} (`{r['notebook']}`)"
        lines.append(f"| {name} | {r.get('framework', '-')} | {_size(b.get('size'))} | "
                     f"{build_cell(b)} | {_secs(r.get('run_seconds'))} | "
                     f"{section.replace('|', '/')} | {outcome_cell(r)} | {run_date(r)} |")
    counts = collections.Counter(r.get("outcome") for r in rows)
    lines += ["", ", ".join(f"{counts[k]} {k}" for k in ("ok", "failed", "not runnable",
                                                         "not run") if counts[k]) + "."]
    notes = [f"- {r['config']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        lines += ["", "Recipe notes:", "", *notes]
    fixes = [f"- {r['config']}: {r['workaround']}" for r in rows if r.get("workaround")]
    if fixes:
        lines += ["", "Upstream defects the recipe works around, as a user would:", "", *fixes]
    return "\n".join(lines) + "\n"


def save(rows: list[dict[str, Any]], touched: set[str], out: Path,
         meta: dict[str, Any]) -> None:
    """Write the table: this process's ``touched`` rows over the file's current ones (so a
    ``--build-only`` run beside a full one keeps both), written to a temporary name first."""
    out.mkdir(parents=True, exist_ok=True)
    current = load(out)
    rows = [r if r["config"] in touched or r["config"] not in current
            else current[r["config"]] for r in rows]
    for name, text in (("notebook_matrix.json",
                        json.dumps({**meta, "rows": rows}, indent=1, default=str) + "\n"),
                       ("notebook_matrix.md", markdown(rows, meta))):
        tmp = out / f".{name}.{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, out / name)


def load(out: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((out / "notebook_matrix.json").read_text())
    except (OSError, ValueError):
        return {}
    return {r["config"]: r for r in data.get("rows", [])}


# ------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="only these configs (case-insensitive prefixes)")
    parser.add_argument("--rebuild", action="store_true", help="build images again")
    parser.add_argument("--build-only", action="store_true", help="build, do not run")
    parser.add_argument("--timeout", type=int, default=30, metavar="MIN",
                        help="SLURM --time of each run, in minutes (default 30)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from clusterup import ensure_cluster
    from realnotebooks import RECIPES

    env = ensure_cluster()
    cluster_cache_ready(env)
    profile = write_profile(env)
    previous = load(args.out)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"), "machine": machine()}
    chosen = candidates()
    wanted = [n.lower() for n in args.only or []]
    unknown = [n for n in wanted if not any(c["config"].lower().startswith(n)
                                            for c in chosen)]
    if unknown:
        parser.error(f"--only: no config starts with {', '.join(unknown)}")
    bases: dict[str, Path] = {}
    rows: dict[str, dict[str, Any]] = {}
    touched: set[str] = set()
    heads = {c["config"]: {"config": c["config"], "python": c["python"],
                           "notebook": c["notebook"].name if c["notebook"] else "",
                           "framework": getattr(RECIPES.get(c["config"]), "framework",
                                                None) or framework_of(c["requirements"]),
                           "note": getattr(RECIPES.get(c["config"]), "note", ""),
                           "workaround": getattr(RECIPES.get(c["config"]), "workaround", "")}
             for c in chosen}
    for c in chosen:
        name = c["config"]
        recipe = RECIPES.get(name)
        if not c["why"]:
            c = with_workaround(c, recipe)
        row: dict[str, Any] = dict(heads[name])
        picked = not wanted or any(name.lower().startswith(n) for n in wanted)
        if c["why"]:
            touched.add(name)
            rows[name] = {**row, "outcome": "not runnable", "detail": c["why"]}
            continue
        if not picked:
            rows[name] = previous.get(name) or {**row, "outcome": "not run",
                                                "detail": "not run in this session"}
            continue
        rows[name] = {**previous.get(name, {}), **row}
        if c["suite"] not in bases:
            bases[c["suite"]] = base_sif(c["suite"])
        touched.add(name)
        row["build"] = build(c, bases[c["suite"]], profile, args.rebuild,
                             load(args.out).get(name, {}))
        if not row["build"]["ok"]:
            reason = build_reason(row["build"]["error"])
            cause = known_cause(row["build"]["error"])
            row.update(outcome="failed", detail=f"image build failed: {reason}"
                       + (f" (cause: {cause})" if cause else ""))
        elif args.build_only:
            old = load(args.out).get(name, {})
            row.update({k: old[k] for k in ("outcome", "detail", "run_seconds", "run_id",
                                            "last_section", "last_section_title")
                        if k in old} or {"outcome": "not run",
                                         "detail": "built only (--build-only)"})
        elif recipe is None:
            row.update(outcome="not run", detail="no recipe in tests/realnotebooks.py")
        else:
            row.update(run(c, recipe, bases[c["suite"]], profile, args.timeout))
        rows[name] = row
        save([rows.get(x["config"]) or {**heads[x["config"]], "outcome": "not run",
                                         "detail": "not run in this session"}
              for x in chosen], touched, args.out, meta)
    save([rows[c["config"]] for c in chosen], touched, args.out, meta)
    print((args.out / "notebook_matrix.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
