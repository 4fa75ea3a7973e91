"""What this machine remembers about sessions: the :class:`Session` record
(``$XDG_STATE_HOME/hpc-dl4mic/sessions/<id>.json``, 0600), its profile and the host it
runs on."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..fsutil import atomic_write, safe_name, state_home
from ..remote.profiles import Profile, get_profile

if TYPE_CHECKING:
    from ..remote.host import Host

Say = Callable[[str], None]
ACTIVE_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
                 "RESIZING")


@dataclass
class Session:
    """What this machine remembers about one session."""

    id: str
    profile: str
    job_id: str
    config: str
    image: str
    session_dir: str
    results_dir: str
    data_dir: str
    created: float
    profile_file: str | None = None
    node: str = ""
    state: str = "PENDING"
    local_port: int | None = None
    notebook: str = ""
    end_time: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def work_results(self) -> str:
        """The session's folder under the results dir (Jupyter's root, notebook copy)."""
        return f"{self.results_dir.rstrip('/')}/{self.id}"

    def to_dict(self) -> dict:
        return asdict(self)


def sessions_dir() -> Path:
    """The 0700 folder of the session records."""
    path = state_home() / "sessions"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def save_session(session: Session) -> None:
    """Write the record atomically, 0600."""
    atomic_write(sessions_dir() / f"{session.id}.json",
                 json.dumps(session.to_dict(), indent=2) + "\n", mode=0o600)


# the fields a record must have, and their types (the rest have defaults)
_REQUIRED = {"id": str, "profile": str, "job_id": str, "config": str, "image": str,
             "session_dir": str, "results_dir": str, "data_dir": str, "created": (int, float)}
_OPTIONAL = {"profile_file": (str, type(None)), "node": str, "state": str,
             "local_port": (int, type(None)), "notebook": str, "end_time": str, "extra": dict}


def parse_session(text: str) -> Session:
    """A record's text as a :class:`Session`; ValueError saying what is wrong with it."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    for key, value in data.items():
        kind = _REQUIRED.get(key) or _OPTIONAL[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"field {key!r} has the wrong type ({type(value).__name__})")
    return Session(**data)


def read_records() -> tuple[list[Session], dict[Path, str]]:
    """Every readable record, newest first, and apart the broken ones with what is wrong."""
    out: list[Session] = []
    broken: dict[Path, str] = {}
    for path in sorted(sessions_dir().glob("*.json")):
        try:
            out.append(parse_session(path.read_text()))
        except OSError as exc:
            broken[path] = f"cannot read it ({exc.strerror or exc})"
        except (ValueError, UnicodeDecodeError) as exc:
            broken[path] = str(exc)
    return sorted(out, key=lambda s: -s.created), broken


def broken_record_line(path: Path, problem: str) -> str:
    """The one-line message about a record that cannot be used."""
    return (f"session record {path} is unusable: {problem}; it is ignored (delete the file "
            "if you no longer need the session)")


def load_sessions(warn: Say | None = None) -> list[Session]:
    """Every recorded session, newest first; ``warn`` gets one line per broken record
    (garbage, truncated, unreadable), which never hides the others."""
    sessions, broken = read_records()
    for path, problem in broken.items():
        if warn is not None:
            warn(broken_record_line(path, problem))
    return sessions


def find_session(ident: str) -> Session:
    """A session by id, unique id prefix, or job id. An id whose record is broken is an
    error naming the record."""
    sessions, broken = read_records()
    exact = [s for s in sessions if ident in (s.id, s.job_id)]
    matches = exact or [s for s in sessions if s.id.startswith(ident)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        bad = [p for p in broken if p.stem == ident] or \
              [p for p in broken if p.stem.startswith(ident)]
        if len(bad) == 1:
            raise InputError(broken_record_line(bad[0], broken[bad[0]]).replace(
                "; it is ignored", ""))
        raise InputError(f"no session {ident!r}; see `hpc-dl4mic status`")
    raise InputError(f"session {ident!r} is ambiguous: {', '.join(s.id for s in matches)}")


def open_in_browser(url: str) -> Path:
    """Open ``url`` (it carries the token) in the browser without putting it in an argv
    that ``ps`` shows to other users: the browser gets a 0600 page in the 0700 records
    folder that redirects to it (as Jupyter's own ``jpserver-*-open.html``)."""
    import html
    import webbrowser
    from urllib.parse import urlparse

    port = urlparse(url).port or 0
    page = atomic_write(sessions_dir() / f"open-{port}.html",
                        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">\n'
                        f'<meta http-equiv="refresh" content="0;url={html.escape(url)}">\n'
                        '</head><body><p>Opening Jupyter ...</p></body></html>\n', mode=0o600)
    webbrowser.open(page.as_uri())
    return page


def new_session_id(config_name: str) -> str:
    """``<config>-<date>-<time>-<4 hex>`` (the config's name as :func:`safe_name` makes it)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{safe_name(config_name)}-{stamp}-{secrets.token_hex(2)}"


def seconds_left(end_time: str) -> float | None:
    """Seconds until SLURM's EndTime (local time, ``2026-11-22T01:00:00``)."""
    if not end_time or end_time in ("Unknown", "None"):
        return None
    try:
        return time.mktime(time.strptime(end_time, "%Y-%m-%dT%H:%M:%S")) - time.time()
    except ValueError:
        return None


def session_profile(session: Session) -> Profile:
    """The profile the session was started with (the pseudo-profile for ``--local``)."""
    from ..remote.hosts import LOCAL_PROFILE, local_profile

    if session.profile == LOCAL_PROFILE:
        return local_profile()
    return get_profile(session.profile, Path(session.profile_file) if session.profile_file
                       else None)


def session_host(session: Session, *, accept_new_host_key: bool = False) -> Host:
    """The host the session runs on, connected (a context manager that closes it)."""
    from ..remote.hosts import open_host

    return open_host(session_profile(session), accept_new_host_key=accept_new_host_key)
