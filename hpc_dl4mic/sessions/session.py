"""Sessions: Jupyter in a SIF on a SLURM node, tunnelled back to this machine.

A session is recorded locally (``$XDG_STATE_HOME/hpc-dl4mic/sessions/<id>.json``, 0600) as
soon as its job is submitted, so ``status``, ``connect``, ``logs``, ``cancel`` and
``fetch`` work after the submitting command has gone. On the cluster it has a 0700 folder
``WORK_DIR/sessions/<id>/`` holding the job script, the job log and, once Jupyter answers,
``connection.json`` (host, port, token; 0600) which the client reads over SFTP.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import HpcDl4micError, InputError, Interrupted, RemoteError
from ..fsutil import atomic_write, state_home
from ..jobs.resources import JobResources
from ..remote.profiles import Profile, get_profile
from ..remote.runner import tail

Say = Callable[[str], None]
ACTIVE_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
                 "RESIZING")
WALLTIME_WARNING_SECONDS = 600


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


def scheduler(conn):
    """SLURM over the connection, or the detached-process scheduler of ``--local``."""
    from ..jobs.slurm import SlurmScheduler
    from ..remote.localhost import LocalHost, LocalScheduler

    return LocalScheduler(conn) if isinstance(conn, LocalHost) else SlurmScheduler(conn)


def sessions_dir() -> Path:
    path = state_home() / "sessions"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def save_session(session: Session) -> None:
    atomic_write(sessions_dir() / f"{session.id}.json",
                 json.dumps(session.to_dict(), indent=2) + "\n", mode=0o600)


def load_sessions() -> list[Session]:
    """Every recorded session, newest first."""
    out = []
    for path in sessions_dir().glob("*.json"):
        try:
            out.append(Session(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(out, key=lambda s: -s.created)


def find_session(ident: str) -> Session:
    """A session by id, unique id prefix, or job id."""
    sessions = load_sessions()
    exact = [s for s in sessions if ident in (s.id, s.job_id)]
    matches = exact or [s for s in sessions if s.id.startswith(ident)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(f"no session {ident!r}; see `hpc-dl4mic status`")
    raise InputError(f"session {ident!r} is ambiguous: {', '.join(s.id for s in matches)}")


def new_session_id(config_name: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{config_name}-{stamp}-{secrets.token_hex(2)}"


def render_job_script(session: Session, profile: Profile, *, image_name: str,
                      sbatch_lines: list[str], ready_timeout: int = 300,
                      bind_host: str = "") -> str:
    """The sbatch script of a session (pure)."""
    from ..jobs.slurm import render_template

    return render_template(
        "jupyter.sbatch.j2", job_name=f"hpc-dl4mic-{session.config}"[:60],
        session_dir=session.session_dir, sbatch_lines=sbatch_lines, session_id=session.id,
        image_name=image_name, tool_version=__version__, image=session.image,
        data_dir=session.data_dir, results_dir=session.results_dir, notebook=session.notebook,
        ready_timeout=ready_timeout, modules=profile.modules, bind_host=bind_host,
        offline=not getattr(profile, "node_internet", False))


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    token: str


def read_endpoint(conn, session: Session) -> Endpoint | None:
    """The job's connection file, or None while Jupyter is not ready."""
    path = f"{session.session_dir}/connection.json"
    try:
        data = json.loads(conn.read_file(path))
    except (HpcDl4micError, OSError, ValueError):
        return None
    return Endpoint(str(data["host"]), int(data["port"]), str(data["token"]))


def job_log_tail(conn, session: Session, lines: int = 20) -> str:
    try:
        return tail(conn.read_file(f"{session.session_dir}/job.log").decode("utf-8", "replace"),
                    lines)
    except (HpcDl4micError, OSError):
        return "(no job log)"


STATE_POLL_QUEUED = 1.0  # seconds between scheduler queries until the job runs
STATE_POLL_RUNNING = 3.0  # then the connection file is the signal; the scheduler only
ATTACHED_STATE_POLL = 15.0  # says whether the job died. While attached: walltime + job end.
SCHEDULER_ERRORS_TOLERATED = 3  # busy slurmctlds time out now and then


def wait_until_ready(conn, session: Session, *, timeout: float = 600.0, say: Say,
                     poll: float = 0.1, reconnect: bool = False) -> Endpoint:
    """Poll the scheduler and the connection file until Jupyter answers; say each state
    change. A job that fails or ends first is an error with the tail of its log.
    ``reconnect``: the session was started earlier (``connect``), so an ended job is
    reported as such, not as a start that failed.
    """
    deadline = time.monotonic() + timeout
    last = ""
    next_state_check = 0.0
    errors = 0
    info = None
    while True:
        now = time.monotonic()
        if now >= next_state_check:
            try:
                info = scheduler(conn).info(session.job_id)
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
                                  f"ready; job log:\n{job_log_tail(conn, session)}")
            shown = f"{state} ({info.reason})" if info and state == "PENDING" else state
            if shown != last:
                last = shown
                endpoint = read_endpoint(conn, session) if state == "RUNNING" else None
                if endpoint is not None:
                    say(f"job {session.job_id} running on {session.node or '?'}; "
                        "Jupyter is ready")
                    return endpoint
                say({"PENDING": f"job {session.job_id} queued: {shown}",
                     "RUNNING": f"job {session.job_id} running on {session.node or '?'}; "
                                "starting Jupyter ..."}.get(state, f"job {session.job_id}: "
                                                                   f"{shown}"))
        if session.state == "RUNNING":
            endpoint = read_endpoint(conn, session)
            if endpoint is not None:
                return endpoint
        if now >= deadline:
            raise RemoteError(f"Jupyter was not ready after {timeout:.0f} s (job {session.job_id} "
                              f"{session.state}); see `hpc-dl4mic logs {session.id}`; job log:"
                              f"\n{job_log_tail(conn, session)}")
        time.sleep(poll)


def lab_url(local_port: int, token: str) -> str:
    return f"http://127.0.0.1:{local_port}/lab?token={token}"


def open_connection(profile: Profile, *, accept_new_host_key: bool = False):
    """One SSH connection to the profile's cluster (this machine for ``--local``)."""
    from ..remote.localhost import LOCAL_PROFILE, LocalHost
    from ..remote.ssh import Connection

    if profile.name == LOCAL_PROFILE:
        return LocalHost()

    return Connection.open(profile.ssh_target(), accept_new_host_key=accept_new_host_key)


@dataclass
class SubmitOptions:
    data: str | None = None
    results: str | None = None
    upload: str | None = None  # SRC or SRC:DEST (DEST inside the data folder)
    resources: JobResources = JobResources()  # overrides of the profile's
    ready_timeout: float = 600.0
    local_port: int = 0


def check_local_options(options: SubmitOptions, *, profile_name: str | None) -> None:
    """``--local`` runs here, without SLURM or a tunnel: refuse what would be ignored."""
    given = [f"--{name}" for name in options.resources.given()]
    if profile_name:
        given.insert(0, "--profile")
    if options.local_port:
        given.append("--port")
    if options.upload:
        given.append("--upload (the data is already here: give its folder with --data)")
    if given:
        raise InputError(f"{', '.join(given)}: not used with --local (no cluster, no SLURM, "
                         "no tunnel: the job runs here until it ends or is cancelled)")


def check_attach_options(options: SubmitOptions) -> None:
    """What can be checked here before anything is submitted: the local tunnel port."""
    from ..remote.tunnel import check_port_free

    if not 0 <= options.local_port <= 65535:
        raise InputError(f"--port {options.local_port}: expected a port between 1 and 65535 "
                         "(or 0 for a free one)")
    if options.local_port:
        check_port_free(options.local_port)


def parse_upload(value: str) -> tuple[Path, str]:
    """``--upload SRC[:DEST]``: the local folder and its place inside the data folder
    (default: the folder's own name)."""
    src, dest = value, ""
    if not Path(value).expanduser().is_dir() and ":" in value:
        src, dest = value.rsplit(":", 1)
    local = Path(src).expanduser()
    if not local.is_dir():
        raise InputError(f"--upload {value}: {src!r} is not a local folder")
    dest = (dest or local.resolve().name).strip("/")
    parts = dest.split("/")
    if not dest or any(p in ("", ".", "..") for p in parts) or any(c in dest for c in ",:\n"):
        raise InputError(f"--upload {value}: DEST {dest!r} must be a relative folder inside the "
                         "data folder (no '..', ',' or ':')")
    return local, dest


PATH_CHECK = r"""
umask 077
status=0
while [ $# -gt 0 ]; do
    opt=$1; path=$2; shift 2
    if [ -e "$path" ] && [ ! -d "$path" ]; then
        echo "$opt	$path: not a folder"; status=1; continue
    fi
    if ! err=$(mkdir -p -- "$path" 2>&1); then
        echo "$opt	$path: cannot be created (${err##*: })"; status=1; continue
    fi
    if ! probe=$(mktemp "$path/.hpc-dl4mic-probe.XXXXXX" 2>/dev/null); then
        echo "$opt	$path: not writable"; status=1; continue
    fi
    rm -f -- "$probe"
done
exit $status
"""


def check_folders(conn, folders: list[tuple[str, str]]) -> None:
    """Make each (option, path) a folder on the host (0700 when new) and check that it is
    writable: one round trip; the first problem is a one-line error naming the option."""
    argv = ["sh", "-c", PATH_CHECK, "hpc-dl4mic"]
    for option, path in folders:
        argv += [option, path]
    result = conn.run(argv, check=False, timeout=60)
    if result.returncode != 0:
        line = (result.stdout.strip() or result.stderr.strip() or "?").splitlines()[0]
        option, _, problem = line.partition("\t")
        raise InputError(f"{option} {problem}" if problem else f"data/results folders: {line}")


@dataclass(frozen=True)
class Folders:
    """A session's folders on the host, resolved and checked before anything is built."""

    work: str
    data: str
    results: str
    upload: tuple[Path, str] | None = None


def prepare_folders(conn, profile: Profile, options: SubmitOptions) -> Folders:
    """Resolve ``--data``/``--results`` on the host (``~`` its home; a relative path under
    the current folder here, under the home on a cluster), make them and check that they
    are writable folders: each problem is a one-line error naming the option."""
    from ..remote.localhost import LocalHost

    home = conn.home()
    here = os.getcwd() if isinstance(conn, LocalHost) else home  # one Host API: issue 9
    work = profile.remote_work_dir(home)
    data_dir = _abs(options.data or profile.data_dir or f"{work}/data", home, here)
    results_dir = _abs(options.results or profile.results_dir or f"{work}/results", home, here)
    for option, path in (("--data", data_dir), ("--results", results_dir)):
        if any(c in path for c in ",:\n"):
            raise InputError(f"{option} {path}: a data/results path may not contain ',' or ':' "
                             "(apptainer --bind syntax)")
    upload = parse_upload(options.upload) if options.upload else None
    check_folders(conn, [("--data", data_dir), ("--results", results_dir)])
    return Folders(work=work, data=data_dir, results=results_dir, upload=upload)


def submit(inputs, profile: Profile, conn, options: SubmitOptions, *, say: Say,
           profile_file: str | None = None, notebook: str = "",
           build_progress: Say | None = None, folders: Folders | None = None) -> Session:
    """Make sure the image is on the cluster, submit the job, record the session."""
    from ..jobs.slurm import sbatch_lines
    from ..remote.localhost import LocalHost

    lines = sbatch_lines(profile, options.resources)
    local = isinstance(conn, LocalHost)  # until one Host interface (issue 9)
    folders = folders or prepare_folders(conn, profile, options)
    work, data_dir, results_dir = folders.work, folders.data, folders.results
    image = build_for(inputs, conn, profile, progress=build_progress or say)
    say(f"image {'found in the cache' if image.cached else 'built'}: {image.path}")
    if folders.upload is not None:
        local_dir, dest = folders.upload
        target = f"{data_dir}/{dest}"
        conn.makedirs(target, mode=0o700)
        upload_tree(conn, local_dir, target, say=say)
        say(f"your data is at /data/{dest} in the notebook")
    session_id = new_session_id(inputs.name)
    session = Session(id=session_id, profile=profile.name, job_id="", config=inputs.name,
                      image=str(image.path), session_dir=f"{work}/sessions/{session_id}",
                      results_dir=results_dir, data_dir=data_dir, created=time.time(),
                      profile_file=profile_file, notebook=notebook)
    script = render_job_script(session, profile, image_name=inputs.name, sbatch_lines=lines,
                               ready_timeout=int(min(options.ready_timeout, 3600)),
                               bind_host="127.0.0.1" if local else "")
    session.job_id = scheduler(conn).submit_text(script, session.session_dir,
                                                 make_dirs=(data_dir, results_dir))
    save_session(session)
    say(f"submitted job {session.job_id} (session {session.id})")
    return session


def build_for(inputs, conn, profile: Profile, *, progress: Say):
    """The session's image: in this machine's cache for ``--local``, else on the cluster."""
    from ..images.build import build_image, build_image_remote
    from ..images.cache import ImageCache
    from ..remote.localhost import LocalHost

    if isinstance(conn, LocalHost):
        return build_image(inputs, ImageCache(), progress=progress)
    return build_image_remote(inputs, conn, profile, progress=progress)


def _abs(path: str, home: str, cwd: str) -> str:
    """A user's path on the host: ``~`` is the home there, a relative path is under the
    host's working folder (the current folder here, the login folder on a cluster)."""
    if path == "~" or path.startswith("~/"):
        return home.rstrip("/") + path[1:]
    if not path.startswith("/"):
        return os.path.normpath(f"{cwd.rstrip('/')}/{path}")
    return path


def upload_tree(conn, local: Path, remote: str, *, say: Say) -> int:
    """Copy a local folder up, skipping files whose size and mtime already match."""
    local = Path(local).expanduser()
    if not local.is_dir():
        raise InputError(f"--upload {local}: not a folder")
    sftp = conn.sftp()
    sent = 0
    for path in sorted(local.rglob("*")):
        rel = path.relative_to(local).as_posix()
        target = f"{remote}/{rel}"
        if path.is_dir():
            conn.makedirs(target, mode=0o700)
            continue
        st = path.stat()
        try:
            remote_st = sftp.stat(target)
            if remote_st.st_size == st.st_size and int(remote_st.st_mtime) == int(st.st_mtime):
                continue
        except OSError:
            pass
        conn.put(path, target, mode=0o600)
        sftp.utime(target, (int(st.st_atime), int(st.st_mtime)))
        sent += 1
    say(f"uploaded {sent} changed file(s) from {local} to {remote}")
    return sent


def attach(conn, session: Session, endpoint: Endpoint, *, local_port: int = 0, say: Say,
           on_ready: Callable[[str], None], stop: threading.Event | None = None,
           tunnel: str = "paramiko") -> str:
    """Forward a local port to Jupyter until interrupted, the job ends or ``stop`` is set.

    Returns why it stopped: ``"interrupted"``, ``"job-ended"`` (COMPLETED: Jupyter was
    shut down) or ``"job-failed"`` (TIMEOUT, FAILED, CANCELLED elsewhere, node failure ...).
    """
    stop = stop or threading.Event()
    with conn.forward(endpoint.host, endpoint.port, local_port=local_port,
                      via=tunnel) as forward:
        session.local_port = forward.local_port
        session.extra["ready"] = True
        save_session(session)
        on_ready(lab_url(forward.local_port, endpoint.token))
        warned = False
        try:
            while not stop.wait(ATTACHED_STATE_POLL):
                info = scheduler(conn).info(session.job_id)
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


def seconds_left(end_time: str) -> float | None:
    """Seconds until SLURM's EndTime (local time, ``2026-11-22T01:00:00``)."""
    if not end_time or end_time in ("Unknown", "None"):
        return None
    try:
        return time.mktime(time.strptime(end_time, "%Y-%m-%dT%H:%M:%S")) - time.time()
    except ValueError:
        return None


def session_profile(session: Session) -> Profile:
    from ..remote.localhost import LOCAL_PROFILE, local_profile

    if session.profile == LOCAL_PROFILE:
        return local_profile()
    return get_profile(session.profile, Path(session.profile_file) if session.profile_file
                       else None)


def refresh(conn, session: Session) -> Session:
    """Update the record's state from SLURM."""
    info = scheduler(conn).info(session.job_id)
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
            with open_connection(session_profile(group[0])) as conn:
                for s in group:
                    refresh(conn, s)
        except HpcDl4micError as exc:
            warn(f"{name}: {str(exc).splitlines()[0]} (states not updated)")


def cancel(conn, session: Session, *, wait: float = 30.0) -> Session:
    """scancel the job and wait (bounded) until SLURM says it is no longer running."""
    scheduler(conn).cancel(session.job_id)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        info = scheduler(conn).info(session.job_id)
        if info is None or info.state not in ACTIVE_STATES:
            break
        time.sleep(0.5)
    session = refresh(conn, session)
    if session.state == "COMPLETED" and session.job_id.startswith("local-"):
        session.state = "CANCELLED"  # a local job has no scheduler to remember why it ended
        save_session(session)
    return session


def read_log(conn, session: Session, *, offset: int = 0) -> tuple[str, int]:
    """The job log from byte ``offset``: (text, new offset). Job logs are small, so the
    whole file is read (over SFTP, or here for a ``--local`` session)."""
    try:
        data = conn.read_file(f"{session.session_dir}/job.log")[offset:]
    except (HpcDl4micError, OSError):
        return "", offset
    return data.decode("utf-8", "replace"), offset + len(data)


def print_log(conn, session: Session, *, follow: bool, write: Say,
              interval: float = 1.0) -> None:
    """Hand the job log to ``write``; with ``follow``, new output too until the job ends."""
    text, offset = read_log(conn, session)
    write(text)
    while follow:
        time.sleep(interval)
        text, offset = read_log(conn, session, offset=offset)
        write(text)
        if not text and refresh(conn, session).state not in ACTIVE_STATES:
            break


def fetch(conn, session: Session, dest: Path, *, say: Say) -> list[Path]:
    """Copy the session's results folder here: resumable (``.part`` files continue),
    unchanged files skipped, every file checked against the cluster's sha256sum."""
    import stat as statmod

    from ..images.cache import file_sha256 as _sha256

    sftp = conn.sftp()
    root = session.work_results
    dest = Path(dest).expanduser()
    fetched: list[Path] = []

    def walk(remote: str, local: Path) -> None:
        for entry in sftp.listdir_attr(remote):
            rpath, lpath = f"{remote}/{entry.filename}", local / entry.filename
            if statmod.S_ISLNK(entry.st_mode or 0):
                continue  # e.g. the session's `data` link to /data: never copy the data back
            if statmod.S_ISDIR(entry.st_mode or 0):
                walk(rpath, lpath)
                continue
            lpath.parent.mkdir(parents=True, exist_ok=True)
            remote_sum = conn.run(["sha256sum", rpath], timeout=600).stdout.split()[0]
            if lpath.is_file() and _sha256(lpath) == remote_sum:
                continue
            part = lpath.with_name(lpath.name + ".part")
            offset = part.stat().st_size if part.is_file() else 0
            if offset > (entry.st_size or 0):
                part.unlink()
                offset = 0
            with sftp.open(rpath, "rb") as src, open(part, "ab") as out:
                src.seek(offset)
                src.prefetch()
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            if _sha256(part) != remote_sum:
                part.unlink()
                raise RemoteError(f"fetch {rpath}: checksum mismatch; run fetch again")
            os.replace(part, lpath)
            if entry.st_mtime is not None:
                os.utime(lpath, (entry.st_atime or entry.st_mtime, entry.st_mtime))
            fetched.append(lpath)
            say(f"fetched {lpath}")

    try:
        sftp.stat(root)
    except OSError:
        raise RemoteError(f"{root}: no results folder on the cluster") from None
    walk(root, dest)
    return fetched


def run_attached(conn, session: Session, *, ready_timeout: float, local_port: int, say: Say,
                 on_ready: Callable[[str], None], cancel_on_exit: bool,
                 ask_cancel: Callable[[str], bool] | None, tunnel: str = "paramiko",
                 reconnect: bool = False) -> str:
    """Wait for Jupyter, tunnel it until Ctrl-C / SIGTERM / the job ends, then apply the
    exit policy (cancel with ``cancel_on_exit``, else ask, else keep). Returns the reason
    (see :func:`attach`). A failure of ours while the job runs (the tunnel, a timeout) cancels
    it too with ``cancel_on_exit``; otherwise the message says that it keeps running."""
    from ..remote.runner import terminating

    with terminating():
        try:
            endpoint = wait_until_ready(conn, session, timeout=ready_timeout, say=say,
                                        reconnect=reconnect)
            reason = attach(conn, session, endpoint, local_port=local_port, say=say,
                            on_ready=on_ready, tunnel=tunnel)
        except (KeyboardInterrupt, Interrupted):
            reason = "interrupted"
        except Exception:
            if session.state in ACTIVE_STATES:
                _after_failure(conn, session, cancel_on_exit=cancel_on_exit, say=say)
            raise
    if reason == "interrupted":
        question = f"Cancel job {session.job_id} (session {session.id})?"
        if cancel_on_exit or (ask_cancel is not None and ask_cancel(question)):
            cancel(conn, session)
            say(f"cancelled job {session.job_id}")
        else:
            say(f"job {session.job_id} keeps running; reconnect with "
                f"`hpc-dl4mic connect {session.id}`, stop it with `hpc-dl4mic cancel "
                f"{session.id}`")
    return reason


def _after_failure(conn, session: Session, *, cancel_on_exit: bool, say: Say) -> None:
    if cancel_on_exit:
        try:
            cancel(conn, session)
            say(f"cancelled job {session.job_id} (--cancel-on-exit)")
        except Exception as exc:  # noqa: BLE001 - the original failure is what to report
            say(f"could not cancel job {session.job_id}: {str(exc).splitlines()[0]}; "
                f"cancel it with `hpc-dl4mic cancel {session.id}`")
        return
    say(f"job {session.job_id} keeps running (no --cancel-on-exit); reconnect with "
        f"`hpc-dl4mic connect {session.id}`, stop it with `hpc-dl4mic cancel {session.id}`")


def submit_and_attach(target: str, *, profile_name: str | None, run_local: bool,
                      profile_file: Path | None, build: dict, options: dict,
                      accept_new_host_key: bool, say: Say, build_progress: Say,
                      on_ready: Callable[[str], None], cancel_on_exit: bool,
                      ask_cancel: Callable[[str], bool] | None, tunnel: str) -> str:
    """``hpc-dl4mic submit``: check everything that can be checked here, make sure of the
    image, submit, then wait and tunnel (:func:`run_attached`). Returns the reason it ended.
    """
    from ..catalogue.config import resolve_target
    from ..images.build import prepare_notebook_image, remote_base_digest
    from ..jobs.slurm import sbatch_lines

    opts = SubmitOptions(**options)
    config = resolve_target(target)
    if run_local:
        from ..remote.localhost import local_profile

        check_local_options(opts, profile_name=profile_name)
        profile = local_profile()
    elif profile_name:
        profile = get_profile(profile_name, profile_file)
        check_attach_options(opts)
    else:
        raise InputError("name a cluster profile with --profile (or set HPC_DL4MIC_PROFILE), "
                         "or run on this machine with --local")
    if opts.upload:
        parse_upload(opts.upload)
    sbatch_lines(profile, opts.resources)  # resource values are checked before anything remote
    with open_connection(profile, accept_new_host_key=accept_new_host_key) as conn:
        folders = prepare_folders(conn, profile, opts)
        inputs = prepare_notebook_image(
            config, **build, **({} if run_local else {"digest": remote_base_digest(conn)}))
        names = [n.split("/", 1)[1] for n in inputs.files if n.startswith("notebooks/")]
        session = submit(inputs, profile, conn, opts, say=say,
                         profile_file=str(profile_file) if profile_file else None,
                         notebook=names[0] if names else "", build_progress=build_progress,
                         folders=folders)
        return run_attached(conn, session, ready_timeout=opts.ready_timeout,
                            local_port=opts.local_port, say=say, on_ready=on_ready,
                            cancel_on_exit=cancel_on_exit, ask_cancel=ask_cancel,
                            tunnel=tunnel)
