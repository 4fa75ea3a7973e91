"""One batch task, run INSIDE the image as ``python3 batch_task.py ...`` (this file is sent
with the run): executes the batch notebook with papermill and keeps ``status.json`` up to
date as it goes.

Only the standard library, papermill and nbformat may be imported here (and only the
standard library at import time): the file runs without hpc-dl4mic installed.

``status.json`` (one line of JSON, replaced atomically): ``state`` (running, completed,
failed, timeout, cancelled), ``index``, ``cell`` (the cell running; for a failure its
index in ``executed.ipynb``), ``cells``, ``start``/``end`` (epoch seconds), ``exit_code``,
``error`` (``{"name", "message", "cell_title"}``), ``node``, ``gpu``, ``skipped`` (the
sections the notebook skipped because the node is offline, and its PDF reports that failed
while the run went on, from ``skipped.jsonl``: each ``{"section", "title", "reason",
"what"}``, reason ``needs the internet`` or ``report failed``). The executed notebook
is saved in every case
(papermill saves it after each cell and when it stops). SIGUSR1 (SLURM's ``--signal``
before the walltime) and the overall ``--timeout`` alarm end the task as ``timeout``;
SIGTERM/SIGINT (scancel) as ``cancelled``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

EXIT_CODES = {"completed": 0, "failed": 1, "timeout": 124, "cancelled": 143}
STATUS_FILE = "status.json"
SKIPPED_FILE = "skipped.jsonl"  # written by the notebook (cellcode/online.py)
EXECUTED_FILE = "executed.ipynb"
ENGINE_NAME = "hpc-dl4mic-status"


class Stopped(BaseException):
    """Raised from a signal handler: the task must stop (``state`` says why).

    A BaseException, so that neither nbclient nor papermill turn it into a cell error."""

    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` as one JSON line to ``path`` through a temp file and a rename."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(data, sort_keys=True, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_params(path: str, index: int) -> dict[str, Any]:
    """The parameters of task ``index`` from a ``params.jsonl`` manifest."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            entry = json.loads(line)
            if int(entry.get("index", -1)) == index:
                return dict(entry.get("params") or {})
    raise SystemExit(f"batch_task: {path}: no line with index {index}")


def gpu_info(env: dict[str, str] | None = None) -> str:
    """The task's GPUs: CUDA_VISIBLE_DEVICES and nvidia-smi's names when present."""
    env = dict(os.environ) if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES", "")
    names = ""
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10, check=False)
        if proc.returncode == 0:
            names = ", ".join(n.strip() for n in proc.stdout.splitlines() if n.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    parts = [f"CUDA_VISIBLE_DEVICES={visible}" if visible else "", names]
    return "; ".join(p for p in parts if p)


class Status:
    """The task's status file, rewritten on each change."""

    def __init__(self, path: str, index: int) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "index": index, "state": "running", "cell": None, "cells": None,
            "start": time.time(), "end": None, "exit_code": None, "error": None,
            "node": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
            "gpu": gpu_info(), "job_id": os.environ.get("SLURM_JOB_ID", ""),
        }
        self.write()

    def write(self) -> None:
        write_json_atomic(self.path, self.data)

    def update(self, **values: Any) -> None:
        self.data.update(values)
        self.write()

    def finish(self, state: str, error: dict[str, Any] | None = None,
               cell: int | None = None) -> int:
        code = EXIT_CODES[state]
        values: dict[str, Any] = {"state": state, "end": time.time(), "exit_code": code,
                                  "error": error, "skipped": read_skipped(
                                      os.path.join(os.path.dirname(self.path), SKIPPED_FILE))}
        if cell is not None:
            values["cell"] = cell
        self.update(**values)
        return code


def read_skipped(path: str) -> list[dict[str, Any]]:
    """The sections the notebook recorded as skipped (one JSON object per line)."""
    out = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    out.append({k: entry.get(k) for k in ("section", "title", "reason", "what")})
    except OSError:
        pass
    return out


def make_engine(on_cell: Callable[[int, int], None]) -> type:
    """A papermill engine (nbclient's) that reports each cell start to ``on_cell``."""
    from papermill.engines import NBClientEngine

    class StatusEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            original = nb_man.cell_start
            total = len(nb_man.nb.cells)

            def cell_start(cell, cell_index=None, **kw):
                if cell_index is not None:
                    on_cell(cell_index, total)
                return original(cell, cell_index=cell_index, **kw)

            nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    return StatusEngine


def kill_children(grace: float = 5.0) -> None:
    """End this process's children (the kernel) when papermill could not: TERM, then KILL."""
    me = os.getpid()
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            kids.append(int(entry))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in kids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + grace
        while kids and time.time() < deadline:
            kids = [p for p in kids if _alive(p)]
            time.sleep(0.1)
        if not kids:
            return


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return os.path.exists(f"/proc/{pid}")


def install_handlers(timeout: float | None) -> None:
    """Signals that stop the task: USR1/ALRM as timeout, TERM/INT as cancelled."""
    def handler(signum: int, _frame: object) -> None:
        signal.signal(signum, signal.SIG_IGN)  # once is enough
        if signum in (signal.SIGUSR1, signal.SIGALRM):
            why = ("task timeout reached" if signum == signal.SIGALRM
                   else "walltime signal (SIGUSR1) received")
            raise Stopped("timeout", why)
        raise Stopped("cancelled", f"{signal.Signals(signum).name} received")

    for sig in (signal.SIGUSR1, signal.SIGALRM, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)


def run_task(notebook: str, params: dict[str, Any], task_dir: str, *, index: int,
             timeout: float | None = None, kernel: str = "python3") -> int:
    """Execute ``notebook`` with ``params`` in ``task_dir``; the exit code of the task."""
    status = Status(os.path.join(task_dir, STATUS_FILE), index)
    output = os.path.join(task_dir, EXECUTED_FILE)
    install_handlers(timeout)
    try:
        import papermill
        from papermill.engines import papermill_engines

        papermill_engines.register(ENGINE_NAME, make_engine(
            lambda cell, total: status.update(cell=cell, cells=total)))
        papermill.execute_notebook(
            notebook, output, parameters=params, cwd=task_dir, kernel_name=kernel,
            progress_bar=False, engine_name=ENGINE_NAME,
            execution_timeout=int(timeout) if timeout else None)
    except Stopped as stop:
        signal.setitimer(signal.ITIMER_REAL, 0)
        kill_children()
        note_stop(notebook, output, f"hpc-dl4mic: task stopped ({stop.state}): {stop.reason}")
        return status.finish(stop.state, {"name": "Stopped", "message": stop.reason})
    except Exception as exc:  # noqa: BLE001 - every failure ends in the status file
        signal.setitimer(signal.ITIMER_REAL, 0)
        state, error, cell = describe_failure(exc, status.data.get("cell"))
        failed = failed_cell(output)
        if failed is not None:
            cell, error["cell_title"] = failed
        return status.finish(state, error, cell)
    signal.setitimer(signal.ITIMER_REAL, 0)
    return status.finish("completed")


def note_stop(notebook: str, output: str, line: str) -> None:
    """Leave an executed notebook that says why the task stopped.

    A stop can come before papermill saved the output for the first time, or while it was
    writing it: then the input notebook stands in for it."""
    try:
        with open(output, encoding="utf-8") as handle:
            nb = json.load(handle)
        nb["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        try:
            with open(notebook, encoding="utf-8") as handle:
                nb = json.load(handle)
        except (OSError, ValueError):
            return
    nb.setdefault("cells", []).insert(0, {
        "cell_type": "markdown", "metadata": {"tags": ["hpc-dl4mic-stop"]},
        "source": f"**{line}**"})
    tmp = f"{output}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(nb, handle, indent=1)
    os.replace(tmp, output)


def describe_failure(exc: BaseException, cell: int | None
                     ) -> tuple[str, dict[str, Any], int | None]:
    """(state, error, failing cell) for an exception out of papermill."""
    name = type(exc).__name__
    if name == "PapermillExecutionError":
        return ("failed", {"name": str(getattr(exc, "ename", name)),
                           "message": str(getattr(exc, "evalue", ""))[:2000]},
                getattr(exc, "cell_index", cell))
    message = (str(exc).strip().splitlines() or [""])[0][:2000]
    state = "timeout" if name == "CellTimeoutError" else "failed"
    return state, {"name": name, "message": message}, cell


def failed_cell(executed: str) -> tuple[int, str] | None:
    """(index in the executed notebook, first source line) of the cell that failed."""
    try:
        with open(executed, encoding="utf-8") as handle:
            cells = json.load(handle)["cells"]
    except (OSError, ValueError, KeyError):
        return None
    for i, cell in enumerate(cells):
        meta = cell.get("metadata", {}).get("papermill", {})
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors or meta.get("status") == "failed":
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            first = next((ln for ln in text.splitlines() if ln.strip()), "")
            title = re.sub(r"^\s*#\s*(@markdown\b)?[\s#]*", "", first).strip()
            return i, title[:200]
    return None


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch_task.py", description=__doc__.split("\n")[0])
    parser.add_argument("--notebook", required=True, help="The batch notebook.")
    parser.add_argument("--params", required=True, help="The run's params.jsonl.")
    parser.add_argument("--index", required=True, type=int, help="The task's index.")
    parser.add_argument("--task-dir", required=True, help="Results and working folder.")
    parser.add_argument("--timeout", type=float, default=0, help="Seconds (0: none).")
    parser.add_argument("--kernel", default="python3")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.umask(0o077)
    os.makedirs(args.task_dir, mode=0o700, exist_ok=True)
    params = read_params(args.params, args.index)
    print(f"batch_task: task {args.index} with {json.dumps(params, sort_keys=True)}",
          flush=True)
    code = run_task(args.notebook, params, args.task_dir, index=args.index,
                    timeout=args.timeout or None, kernel=args.kernel)
    print(f"batch_task: task {args.index} ended with exit code {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
