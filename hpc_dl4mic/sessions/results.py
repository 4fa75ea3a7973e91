"""A session after its start: its state, cancelling it, its job log, its results."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import HpcDl4micError, RemoteError
from .records import (
    ACTIVE_STATES,
    Say,
    Session,
    find_session,
    load_sessions,
    save_session,
    session_host,
)

if TYPE_CHECKING:
    from ..remote.host import Host


def refresh(host: Host, session: Session) -> Session:
    """Update the record's state from the host's scheduler."""
    info = host.scheduler().info(session.job_id)
    if info is None:
        session.state = "GONE" if session.state in ACTIVE_STATES else session.state
    else:
        session.state, session.node, session.end_time = info.state, info.node or session.node, \
            info.end_time
    save_session(session)
    return session


def refresh_all(sessions: list[Session], *, warn: Say) -> None:
    """Update the active ones from their schedulers, one connection per profile; an
    unreachable cluster is reported through ``warn`` and must not hide the others."""
    by_profile: dict[str, list[Session]] = {}
    for s in sessions:
        if s.state in ACTIVE_STATES:
            by_profile.setdefault(s.profile, []).append(s)
    for name, group in by_profile.items():
        try:
            with session_host(group[0]) as host:
                for s in group:
                    refresh(host, s)
        except HpcDl4micError as exc:
            warn(f"{name}: {str(exc).splitlines()[0]} (states not updated)")


def cancel(host: Host, session: Session, *, wait: float = 30.0) -> Session:
    """Cancel the job and wait (bounded) until the scheduler says it is no longer running.

    A scheduler that reports a job we cancelled while it ran as COMPLETED without an exit
    code (plain processes keep no record of why they ended) gets it recorded as CANCELLED.
    """
    jobs = host.scheduler()
    before = jobs.info(session.job_id)
    jobs.cancel(session.job_id)
    deadline = time.monotonic() + wait
    info = None
    while time.monotonic() < deadline:
        info = jobs.info(session.job_id)
        if info is None or info.state not in ACTIVE_STATES:
            break
        time.sleep(0.5)
    session = refresh(host, session)
    was_running = before is not None and before.state in ACTIVE_STATES
    if was_running and info is not None and info.state == "COMPLETED" \
            and session.state == "COMPLETED" and not info.exit_code:
        session.state = "CANCELLED"
        save_session(session)
    return session


def read_log(host: Host, session: Session, *, offset: int = 0) -> tuple[str, int]:
    """The job log from byte ``offset``: (text, new offset). Job logs are small, so the
    whole file is read."""
    try:
        data = host.read_file(f"{session.session_dir}/job.log")[offset:]
    except (HpcDl4micError, OSError):
        return "", offset
    return data.decode("utf-8", "replace"), offset + len(data)


def print_log(host: Host, session: Session, *, follow: bool, write: Say,
              interval: float = 1.0) -> None:
    """Hand the job log to ``write``; with ``follow``, new output too until the job ends."""
    text, offset = read_log(host, session)
    write(text)
    while follow:
        time.sleep(interval)
        text, offset = read_log(host, session, offset=offset)
        write(text)
        if not text and refresh(host, session).state not in ACTIVE_STATES:
            break


def fetch(host: Host, session: Session, dest: Path, *, say: Say) -> list[Path]:
    """Copy the session's results folder here (:meth:`Host.get_tree`): an interrupted copy
    continues, unchanged files are skipped, every file is checked against its sha256 there,
    modification times are kept and links (the session's ``data``) are left out."""
    root = session.work_results
    info = host.stat(root)
    if info is None or info.kind != "dir":
        raise RemoteError(f"{root}: no results folder on {host.display}")
    dest = Path(dest).expanduser()
    report = host.get_tree(root, dest, say=say)
    return [dest / rel for rel in report.copied]


# -- the commands, by session id -----------------------------------------------------------

def list_sessions(session_id: str | None, *, show_all: bool, warn: Say) -> list[Session]:
    """``status``: one session or all, their states refreshed; ended ones only with
    ``show_all`` (or when named)."""
    sessions = [find_session(session_id)] if session_id else load_sessions(warn)
    refresh_all(sessions, warn=warn)
    if show_all or session_id:
        return sessions
    return [s for s in sessions if s.state in ACTIVE_STATES]


def show_log(session_id: str, *, follow: bool, write: Say) -> None:
    """``logs``: the session's job log (with ``follow``, until the job ends)."""
    session = find_session(session_id)
    with session_host(session) as host:
        print_log(host, session, follow=follow, write=write)


def cancel_session(session_id: str) -> Session:
    """``cancel``: cancel the session's job; the updated record."""
    session = find_session(session_id)
    with session_host(session) as host:
        return cancel(host, session)


def fetch_session(session_id: str, dest: Path | None, *, say: Say) -> tuple[list[Path], Path]:
    """``fetch``: copy the session's results into ``dest`` (default ``./SESSION``); the
    files copied and the folder."""
    session = find_session(session_id)
    folder = Path(dest) if dest is not None else Path(session.id)
    with session_host(session) as host:
        return fetch(host, session, folder, say=say), folder
