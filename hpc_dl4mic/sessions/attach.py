"""Waiting for a session's Jupyter and tunnelling it here until the job ends or the user
stops; then the exit policy (cancel, ask, or keep the job)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import HpcDl4micError, InputError, Interrupted, RemoteError
from ..remote.runner import tail
from .records import ACTIVE_STATES, Say, Session, save_session, seconds_left
from .results import cancel

if TYPE_CHECKING:
    from ..remote.host import Forward, Host

WALLTIME_WARNING_SECONDS = 600
STATE_POLL_QUEUED = 1.0  # seconds between scheduler queries until the job runs
STATE_POLL_RUNNING = 3.0  # then the connection file is the signal; the scheduler only
ATTACHED_STATE_POLL = 15.0  # says whether the job died. While attached: walltime + job end.
SCHEDULER_ERRORS_TOLERATED = 3  # busy slurmctlds time out now and then
DEFAULT_TUNNEL = "paramiko"


@dataclass(frozen=True)
class Endpoint:
    """Where the job's Jupyter listens, as the host sees it, and its token."""

    host: str
    port: int
    token: str


def read_endpoint(host: Host, session: Session) -> Endpoint | None:
    """The job's connection file, or None while Jupyter is not ready."""
    path = f"{session.session_dir}/connection.json"
    try:
        data = json.loads(host.read_file(path))
    except (HpcDl4micError, OSError, ValueError):
        return None
    return Endpoint(str(data["host"]), int(data["port"]), str(data["token"]))


def job_log_tail(host: Host, session: Session, lines: int = 20) -> str:
    """The last lines of the job log, for error messages."""
    try:
        return tail(host.read_file(f"{session.session_dir}/job.log").decode("utf-8", "replace"),
                    lines)
    except (HpcDl4micError, OSError):
        return "(no job log)"


def lab_url(local_port: int, token: str) -> str:
    return f"http://127.0.0.1:{local_port}/lab?token={token}"


def wait_until_ready(host: Host, session: Session, *, timeout: float = 600.0, say: Say,
                     poll: float = 0.1, reconnect: bool = False) -> Endpoint:
    """Poll the scheduler and the connection file until Jupyter answers; say each state
    change. A job that fails or ends first is an error with the tail of its log.
    ``reconnect``: the session was started earlier (``connect``), so an ended job is
    reported as such, not as a start that failed.
    """
    jobs = host.scheduler()
    deadline = time.monotonic() + timeout
    last = ""
    next_state_check = 0.0
    errors = 0
    info = None
    while True:
        now = time.monotonic()
        if now >= next_state_check:
            try:
                info = jobs.info(session.job_id)
                errors = 0
            except RemoteError:
                errors += 1
                if errors > SCHEDULER_ERRORS_TOLERATED:
                    raise
                next_state_check = now + STATE_POLL_QUEUED
                continue
            next_state_check = now + (STATE_POLL_RUNNING if info and info.state == "RUNNING"
                                      else STATE_POLL_QUEUED)
            state = info.state if info else "GONE"
            if info is not None:
                session.state, session.node, session.end_time = state, info.node, info.end_time
            else:
                session.state = state
            if state not in ACTIVE_STATES:
                save_session(session)
                if reconnect or session.extra.get("ready"):
                    raise RemoteError(f"session {session.id} has ended (job {session.job_id} "
                                      f"{state}): nothing to connect to; its log: "
                                      f"`hpc-dl4mic logs {session.id}`")
                raise RemoteError(f"job {session.job_id} ended ({state}) before Jupyter was "
                                  f"ready; job log:\n{job_log_tail(host, session)}")
            shown = f"{state} ({info.reason})" if info and state == "PENDING" else state
            if shown != last:
                last = shown
                endpoint = read_endpoint(host, session) if state == "RUNNING" else None
                if endpoint is not None:
                    say(f"job {session.job_id} running on {session.node or '?'}; "
                        "Jupyter is ready")
                    return endpoint
                say({"PENDING": f"job {session.job_id} queued: {shown}",
                     "RUNNING": f"job {session.job_id} running on {session.node or '?'}; "
                                "starting Jupyter ..."}.get(state, f"job {session.job_id}: "
                                                                   f"{shown}"))
        if session.state == "RUNNING":
            endpoint = read_endpoint(host, session)
            if endpoint is not None:
                return endpoint
        if now >= deadline:
            raise RemoteError(f"Jupyter was not ready after {timeout:.0f} s (job {session.job_id} "
                              f"{session.state}); see `hpc-dl4mic logs {session.id}`; job log:"
                              f"\n{job_log_tail(host, session)}")
        time.sleep(poll)


def open_forward(host: Host, endpoint: Endpoint, *, local_port: int, tunnel: str) -> Forward:
    """The host's forward to Jupyter; ``tunnel`` other than the default picks the SSH
    implementation (``openssh``) where the host offers a choice."""
    if tunnel == DEFAULT_TUNNEL:
        return host.forward(endpoint.host, endpoint.port, local_port=local_port)
    return host.forward(endpoint.host, endpoint.port, local_port=local_port,
                        via=tunnel)  # type: ignore[call-arg]


def extra_ports(session: Session) -> list[int]:
    """The job's ports besides Jupyter's that are forwarded too (the config's
    ``hpc_dl4mic.extra_ports`` and ``--forward``)."""
    return [int(p) for p in session.extra.get("extra_ports", [])]


def attach(host: Host, session: Session, endpoint: Endpoint, *, local_port: int = 0, say: Say,
           on_ready: Callable[[str], None], stop: threading.Event | None = None,
           tunnel: str = DEFAULT_TUNNEL) -> str:
    """Forward a local port to Jupyter until interrupted, the job ends or ``stop`` is set.

    Returns why it stopped: ``"interrupted"``, ``"job-ended"`` (COMPLETED: Jupyter was
    shut down) or ``"job-failed"`` (TIMEOUT, FAILED, CANCELLED elsewhere, node failure ...).
    """
    import contextlib

    stop = stop or threading.Event()
    jobs = host.scheduler()
    with contextlib.ExitStack() as stack:
        forward = stack.enter_context(open_forward(host, endpoint, local_port=local_port,
                                                   tunnel=tunnel))
        for port in extra_ports(session):  # TensorBoard and the like, on the job's node
            extra = stack.enter_context(open_forward(host, Endpoint(endpoint.host, port, ""),
                                                     local_port=0, tunnel=tunnel))
            say(f"port {port} of the job: {extra.url('/')}")
        session.local_port = forward.local_port
        session.extra["ready"] = True
        save_session(session)
        on_ready(lab_url(forward.local_port, endpoint.token))
        warned = False
        try:
            while not stop.wait(ATTACHED_STATE_POLL):
                info = jobs.info(session.job_id)
                if info is None or info.state not in ACTIVE_STATES:
                    session.state = info.state if info else "GONE"
                    save_session(session)
                    say(f"job {session.job_id} ended ({session.state}); tunnel closed"
                        + ("" if session.state == "COMPLETED" else
                           f"; results so far: `hpc-dl4mic fetch {session.id}`"))
                    return "job-ended" if session.state == "COMPLETED" else "job-failed"
                left = seconds_left(info.end_time)
                if not warned and left is not None and left < WALLTIME_WARNING_SECONDS:
                    say(f"warning: job {session.job_id} reaches its time limit in "
                        f"{left / 60:.0f} min; save your notebooks")
                    warned = True
        except (KeyboardInterrupt, Interrupted):
            return "interrupted"
    return "interrupted"


def run_attached(host: Host, session: Session, *, ready_timeout: float, local_port: int,
                 say: Say, on_ready: Callable[[str], None], cancel_on_exit: bool,
                 ask_cancel: Callable[[str], bool] | None, tunnel: str = DEFAULT_TUNNEL,
                 reconnect: bool = False) -> str:
    """Wait for Jupyter, tunnel it until Ctrl-C / SIGTERM / the job ends, then apply the
    exit policy (cancel with ``cancel_on_exit``, else ask, else keep). Returns the reason
    (see :func:`attach`). A failure of ours while the job runs (the tunnel, a timeout) cancels
    it too with ``cancel_on_exit``; otherwise the message says that it keeps running."""
    from ..remote.runner import terminating

    with terminating():
        try:
            endpoint = wait_until_ready(host, session, timeout=ready_timeout, say=say,
                                        reconnect=reconnect)
            reason = attach(host, session, endpoint, local_port=local_port, say=say,
                            on_ready=on_ready, tunnel=tunnel)
        except (KeyboardInterrupt, Interrupted):
            reason = "interrupted"
        except Exception:
            if session.state in ACTIVE_STATES:
                after_failure(host, session, cancel_on_exit=cancel_on_exit, say=say)
            raise
    if reason == "interrupted":
        question = f"Cancel job {session.job_id} (session {session.id})?"
        if cancel_on_exit or (ask_cancel is not None and ask_cancel(question)):
            cancel(host, session)
            say(f"cancelled job {session.job_id}")
        else:
            say(f"job {session.job_id} keeps running; reconnect with "
                f"`hpc-dl4mic connect {session.id}`, stop it with `hpc-dl4mic cancel "
                f"{session.id}`")
    return reason


def after_failure(host: Host, session: Session, *, cancel_on_exit: bool, say: Say) -> None:
    """A failure of ours while the job runs: cancel it with ``cancel_on_exit``, else say
    that it keeps running and how to reach or stop it."""
    if cancel_on_exit:
        try:
            cancel(host, session)
            say(f"cancelled job {session.job_id} (--cancel-on-exit)")
        except Exception as exc:  # noqa: BLE001 - the original failure is what to report
            say(f"could not cancel job {session.job_id}: {str(exc).splitlines()[0]}; "
                f"cancel it with `hpc-dl4mic cancel {session.id}`")
        return
    say(f"job {session.job_id} keeps running (no --cancel-on-exit); reconnect with "
        f"`hpc-dl4mic connect {session.id}`, stop it with `hpc-dl4mic cancel {session.id}`")


def reconnect(session_id: str, *, accept_new_host_key: bool = False,
              forward: tuple[int, ...] = (), **attach: object) -> str:
    """``connect``: re-open the tunnel to a running session (:func:`run_attached` with
    ``attach``'s options), also to the ports in ``forward``; the reason it ended."""
    from .options import check_ports
    from .records import find_session, session_host

    check_ports(forward)
    session = find_session(session_id)
    if forward:
        session.extra["extra_ports"] = sorted({*extra_ports(session), *forward})
    if session.extra.get("kind"):  # a command run or a GPU check
        raise InputError(f"session {session.id} is a command run (`hpc-dl4mic run`), not "
                         "Jupyter: see its output with `hpc-dl4mic logs`")
    with session_host(session, accept_new_host_key=accept_new_host_key) as host:
        return run_attached(host, session, reconnect=True, **attach)  # type: ignore[arg-type]
