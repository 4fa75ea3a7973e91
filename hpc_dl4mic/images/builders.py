"""Who runs ``apptainer build`` in a build folder on a host, and how it is stopped.

* :class:`DirectBuilder` runs apptainer on the host itself: ``here`` (this machine; the
  runner stops it on Ctrl-C) or ``login`` (a cluster's login node, in its own process
  group so that an interrupt can kill the build and everything it started even when the
  SSH channel is gone).
* :class:`SlurmBuilder` submits a build job through the host's scheduler, follows its log
  and cancels it on an interrupt or timeout.

Also the one apptainer argv builder (:class:`Apptainer`) and label parser.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import CommandError, InputError
from ..fsutil import safe_name

if TYPE_CHECKING:
    from ..jobs.scheduler import Scheduler
    from ..jobs.site_templates import JobTemplate
    from ..remote.host import Host
    from ..remote.runner import LocalRunner
    from .inputs import BuildInputs

Progress = Callable[[str], None]
BUILD_PID_FILE = "build.pid"
BUILD_LOG = "build.log"
BUILD_SCRIPT = "build.sbatch"
BUILDERS = ("here", "login", "slurm")
ACTIVE_JOB_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
                     "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT")


def _stderr_notice(line: str) -> None:
    print(f"hpc-dl4mic: {line}", file=sys.stderr, flush=True)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@dataclass(frozen=True)
class Apptainer:
    """The apptainer command on a host: its name and the modules it needs loaded."""

    command: str = "apptainer"
    modules: tuple[str, ...] = ()

    def argv(self, *args: str) -> list[str]:
        """``apptainer ARGS`` (after ``module load`` when there are modules)."""
        from ..jobs.slurm import with_modules

        return with_modules([self.command, *args], self.modules)

    def build_argv(self, image: str, definition: str, fakeroot: bool) -> list[str]:
        """The build command (without modules). ``--force``: our labels and %help replace
        those a localimage base brings along."""
        return [self.command, "build", "--force", *(["--fakeroot"] if fakeroot else []),
                image, definition]

    def inspect_argv(self, image: str) -> list[str]:
        return self.argv("inspect", "--json", "--labels", image)


def parse_labels(text: str, what: str) -> dict[str, str]:
    """The labels in ``apptainer inspect --json --labels`` output."""
    try:
        data = json.loads(text)
    except ValueError:
        raise CommandError(f"apptainer inspect {what}: unreadable output") from None
    attrs = data.get("data", {}).get("attributes", {}) if isinstance(data, dict) else {}
    labels = attrs.get("labels", data if isinstance(data, dict) else {}) \
        if isinstance(attrs, dict) else {}
    return {str(k): str(v) for k, v in (labels or {}).items()}


def inspect_labels(sif: Path | str, *, runner: LocalRunner | None = None,
                   apptainer: str | Apptainer = "apptainer",
                   host: Host | None = None) -> dict[str, str]:
    """``apptainer inspect --json --labels`` of an image on ``host`` (default: here)."""
    if host is None:
        from ..remote.localhost import LocalHost

        host = LocalHost()
        if runner is not None:
            host.runner = runner
    tool = apptainer if isinstance(apptainer, Apptainer) else Apptainer(apptainer)
    result = host.run(tool.inspect_argv(str(sif)), timeout=120)
    return parse_labels(result.stdout, str(sif))


@dataclass(frozen=True)
class Outcome:
    """How a build ended: ``ok``, its log, and the exit status where there is one."""

    ok: bool
    log: str
    returncode: int | None = None


class Builder(Protocol):
    """Runs the build command in a build folder on a host."""

    kind: str  # "here" | "login" | "slurm"
    apptainer: Apptainer
    fakeroot: bool | None  # None: when the host's user is not root

    def run(self, host: Host, inputs: BuildInputs, folder: str, argv: list[str], *,
            say: Progress, notice: Progress, timeout: float | None) -> Outcome: ...


# -- on the host itself -------------------------------------------------------------------

# a line the build's group prints every few seconds (and the builder drops): when this
# command is gone (killed, its SSH connection dropped) the write fails and the group ends
KEEPALIVE = "hpc-dl4mic: build alive"
# $$ is the group's leader (in the subshell too). Writes that fail return an error, as
# SIGPIPE is ignored (after the build started: it keeps the default). The keep-alive
# subshell ignores TERM so that it lives to send the KILL; sleep's output goes nowhere, so
# it holds no pipe open. A build that ended because its output pipe broke may leave
# children (mksquashfs): the last write finds that out too.
_GROUP = """echo "$$" > "$1" || exit 1
mark=$2 every=$3
shift 3
"$@" &
child=$!
trap '' PIPE
stop() { trap '' TERM; kill -TERM "-$$" 2>/dev/null; sleep 10; kill -KILL "-$$"; }
(
  while sleep "$every" </dev/null >/dev/null 2>&1; do
    printf '%s\\n' "$mark" 2>/dev/null || { stop; exit 1; }
  done
) &
watch=$!
wait "$child"
rc=$?
kill "$watch" 2>/dev/null
printf '%s\\n' "$mark" 2>/dev/null || stop
exit "$rc"
"""


def in_own_process_group(argv: list[str], pid_file: str, keepalive: float = 5) -> list[str]:
    """``argv`` run by ``setsid -w`` as the leader of a new process group (and session),
    whose id is written to ``pid_file`` first: :func:`stop_group_argv` can then stop the
    build and everything it started (mksquashfs, %post) even when the SSH channel is gone;
    ``-w`` passes the exit status through. Every ``keepalive`` seconds the group prints
    :data:`KEEPALIVE`; when that write fails (this command was killed, the connection
    dropped) it stops itself: TERM, then KILL after 10 s."""
    return ["setsid", "-w", "sh", "-c", _GROUP, "hpc-dl4mic", pid_file, KEEPALIVE,
            f"{keepalive:g}", *argv]


def stop_group_argv(pid_file: str, grace: int = 10) -> list[str]:
    """The remote command that stops the process group named in ``pid_file``: TERM, then
    KILL after ``grace`` seconds while members other than zombies remain (orphans' zombies
    may wait long for init); prints the group id when there was one to stop. Waits a moment
    for the pid file of a build that is only starting."""
    script = ('live() { ps -eo pgid=,stat= 2>/dev/null | '
              'awk -v g="$1" \'$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }\'; }\n'
              'i=0; while [ ! -s "$1" ] && [ "$i" -lt 3 ]; do sleep 1; i=$((i+1)); done\n'
              'pid=$(cat -- "$1" 2>/dev/null) || exit 0\n'
              'case $pid in ""|*[!0-9]*) exit 0;; esac\n'
              'kill -TERM "-$pid" 2>/dev/null || exit 0\n'
              'i=0; while live "$pid"; do\n'
              '  if [ "$i" -ge "$2" ]; then kill -KILL "-$pid" 2>/dev/null; sleep 1; break; fi\n'
              '  sleep 1; i=$((i+1))\n'
              'done\n'
              'echo "$pid"\n')
    return ["sh", "-c", script, "hpc-dl4mic", pid_file, str(int(grace))]


def stop_group(host: Host, pid_file: str, notice: Progress) -> None:
    """Kill an interrupted build's process group (best effort, one line)."""
    try:
        stopped = host.run(stop_group_argv(pid_file), check=False, timeout=60).stdout.strip()
    except Exception as exc:  # noqa: BLE001 - the interrupt itself is what gets reported
        notice(f"could not stop the remote apptainer build on {host.display}: "
               f"{_first_line(exc)}")
        return
    if stopped:
        notice(f"stopped the apptainer build on {host.display} "
               f"(process group {stopped}); removing its build folder")


# the squashfs file apptainer is writing (TMPDIR/bundle-temp-*/squashfs-*), newer than the
# build's definition file: its size is how far the slowest, silent step has got
SQUASHFS_SIZE = ('find "${APPTAINER_TMPDIR:-${TMPDIR:-/tmp}}" -maxdepth 2 -name "squashfs-*" '
                 '-newer "$1" -printf "%s\\n" 2>/dev/null | sort -n | tail -1')


class Heartbeat:
    """While a build prints nothing (mksquashfs of a large image takes minutes): one line
    every ``interval`` seconds with the size of the image being written so far."""

    def __init__(self, host: Host, marker: str, say: Progress, interval: float = 15.0) -> None:
        import threading

        self.host, self.marker, self.say, self.interval = host, marker, say, interval
        self.last = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def line(self, text: str) -> None:
        """A line of the build's own output (the heartbeat stays quiet after it)."""
        self.last = time.monotonic()
        self.say(text)

    def size(self) -> int | None:
        result = self.host.run(["sh", "-c", SQUASHFS_SIZE, "sh", self.marker], check=False,
                               timeout=30)
        text = result.stdout.strip()
        return int(text) if text.isdigit() else None

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            if time.monotonic() - self.last < self.interval:
                continue
            try:
                size = self.size()
            except Exception:  # noqa: BLE001 - a heartbeat must never break the build
                size = None
            self.say(f"creating the image: {size / 2**20:.0f} MiB written so far"
                     if size else "still building (no output for a while)")
            self.last = time.monotonic()


@dataclass(frozen=True)
class DirectBuilder:
    """apptainer run on the host: ``here`` or ``login`` (own process group, stopped by
    :func:`stop_group` on an interrupt)."""

    kind: str = "here"
    apptainer: Apptainer = Apptainer()
    fakeroot: bool | None = None

    def run(self, host: Host, inputs: BuildInputs, folder: str, argv: list[str], *,
            say: Progress, notice: Progress, timeout: float | None) -> Outcome:
        own_group = self.kind == "login"
        command = self.apptainer.argv(*argv[1:])  # argv: Apptainer.build_argv's
        if own_group:
            say(f"building {inputs.name} on the login node ({' '.join(argv[:2])}) ...")
            command = in_own_process_group(command, f"{folder}/{BUILD_PID_FILE}")
        else:
            say(f"building {inputs.name} ({inputs.key[:16]}) with {' '.join(argv[:2])} ...")
        try:
            with Heartbeat(host, f"{folder}/{inputs.definition_name}", say) as beat:
                result = host.stream(command, on_line=lambda line: None if line == KEEPALIVE
                                     else beat.line(line), cwd=folder, check=False,
                                     timeout=timeout)
        except BaseException as exc:
            if own_group:
                stop_group(host, f"{folder}/{BUILD_PID_FILE}", notice)
            if isinstance(exc, CommandError):  # a timeout: a failed build, with its log
                return Outcome(False, _without_keepalive(exc.stderr or str(exc)),
                               exc.returncode)
            raise
        return Outcome(result.returncode == 0, _without_keepalive(result.stdout),
                       result.returncode)


def _without_keepalive(log: str) -> str:
    return "".join(line for line in log.splitlines(keepends=True)
                   if line.rstrip("\r\n") != KEEPALIVE)


# -- a SLURM build job ---------------------------------------------------------------------

def cancel_job(host: Host, scheduler: Scheduler, job_id: str, notice: Progress,
               wait: float = 60.0, poll: float = 1.0) -> None:
    """Cancel an interrupted build job and wait (bounded) until the scheduler says it ended."""
    try:
        scheduler.cancel(job_id)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            info = scheduler.info(job_id)
            if info is None or info.state.split()[0] not in ACTIVE_JOB_STATES:
                break
            time.sleep(poll)
    except Exception as exc:  # noqa: BLE001 - the interrupt itself is what gets reported
        notice(f"could not cancel SLURM build job {job_id}: {_first_line(exc)}")
        return
    notice(f"cancelled SLURM build job {job_id} on {host.display}; removing its build folder")


def _log_since(host: Host, path: str, offset: int) -> bytes:
    info = host.stat(path)
    if info is None or info.size <= offset:
        return b""
    try:
        return host.read_file(path)[offset:]
    except Exception:  # noqa: BLE001 - a log being rotated or not yet readable: next poll
        return b""


def render_build_script(image_name: str, key: str, folder: str, argv: Sequence[str], *,
                        sbatch_lines: Sequence[str] = (), modules: Sequence[str] = (),
                        template: JobTemplate | None = None) -> str:
    """The build job's script (pure): ``argv`` run in ``folder``, its log beside it; from
    ``template`` (a profile's ``build_template``) or the built-in."""
    from ..jobs.site_templates import job_template, render_job

    return render_job(template or job_template(None, "build_template"), dict(
        job_name=safe_name(f"build-{image_name}"), log_path=f"{folder}/{BUILD_LOG}",
        sbatch_lines=list(sbatch_lines), image_name=image_name, key=key, context_dir=folder,
        modules=list(modules), build_argv=list(argv)))


@dataclass(frozen=True)
class SlurmBuilder:
    """A build job (``#SBATCH`` lines without GPUs), submitted and waited for; its script
    from ``template`` (a profile's ``build_template``) or the built-in."""

    sbatch_lines: tuple[str, ...] = ()
    apptainer: Apptainer = Apptainer()
    fakeroot: bool | None = None
    poll: float = 2.0
    kind: str = "slurm"
    template: JobTemplate | None = None

    def run(self, host: Host, inputs: BuildInputs, folder: str, argv: list[str], *,
            say: Progress, notice: Progress, timeout: float | None) -> Outcome:
        log_path, script_path = f"{folder}/{BUILD_LOG}", f"{folder}/{BUILD_SCRIPT}"
        script = render_build_script(inputs.name, inputs.key, folder, argv,
                                     sbatch_lines=self.sbatch_lines,
                                     modules=self.apptainer.modules, template=self.template)
        host.write_file(script_path, script, mode=0o700)
        say(f"submitting a SLURM build job for {inputs.name} ...")
        scheduler = host.scheduler()
        job_id = scheduler.submit(script_path)
        say(f"build job {job_id} submitted")
        try:
            ok = self._wait(host, scheduler, job_id, folder, say, timeout)
        except BaseException:
            cancel_job(host, scheduler, job_id, notice)
            raise
        log = host.read_file(log_path).decode("utf-8", "replace") \
            if host.stat(log_path) is not None else ""
        return Outcome(ok, log)

    def _wait(self, host: Host, scheduler: Scheduler, job_id: str, folder: str,
              say: Progress, timeout: float | None) -> bool:
        """Poll the job until it ends, passing the log's new lines to ``say``; True when it
        COMPLETED (or, once the scheduler forgot it, when it left an image)."""
        from ..errors import BuildError
        from .cache import BUILT

        deadline = None if timeout is None else time.monotonic() + timeout
        offset, pending = 0, ""
        while True:
            info = scheduler.info(job_id)
            data = _log_since(host, f"{folder}/{BUILD_LOG}", offset)
            offset += len(data)
            *lines, pending = (pending + data.decode("utf-8", "replace")).split("\n")
            for line in lines:
                say(line)
            if info is None:  # the scheduler forgot it already: judge by the result
                return host.stat(f"{folder}/{BUILT}") is not None
            state = info.state.split()[0]
            if state not in ACTIVE_JOB_STATES:
                if pending:
                    say(pending)
                return state == "COMPLETED"
            if deadline is not None and time.monotonic() > deadline:
                raise BuildError(f"SLURM build job {job_id} did not finish within "
                                 f"{timeout:g} s")
            time.sleep(self.poll)


# -- choosing one ---------------------------------------------------------------------------

def make_builder(kind: str = "here", *, apptainer: str = "apptainer",
                 modules: Sequence[str] = (), fakeroot: bool | None = None,
                 sbatch_lines: Sequence[str] = (),
                 template: JobTemplate | None = None) -> Builder:
    """The builder the user chose: ``here``, ``login`` or ``slurm`` (its job script from
    ``template``, default the built-in)."""
    tool = Apptainer(apptainer, tuple(modules))
    if kind in ("here", "login"):
        return DirectBuilder(kind, tool, fakeroot)
    if kind == "slurm":
        return SlurmBuilder(tuple(sbatch_lines), tool, fakeroot, template=template)
    raise InputError(f"--build-on {kind!r}: expected {', '.join(BUILDERS[:-1])} or slurm")


def profile_builder(profile, mode: str | None = None, *,
                    fakeroot: bool | None = None) -> Builder:
    """The builder of a cluster profile: ``mode`` or the profile's ``build`` (login or
    slurm), its apptainer and modules; a build job keeps account/partition/time and drops
    GPUs (the one place that reads the profile's job resources for builds) and is written
    from the profile's ``build_template`` (checked here, before anything is uploaded)."""
    from ..jobs.site_templates import check_template, job_template
    from ..jobs.slurm import sbatch_lines

    mode = mode or profile.build
    if mode not in BUILDERS:  # "here" only for --local's pseudo-profile (profiles refuse it)
        raise InputError(f"--build-on {mode!r}: expected login or slurm")
    lines = [line for line in sbatch_lines(profile) if not line.startswith(("--gres", "--gpus"))] \
        if mode == "slurm" else []
    template = None
    if mode == "slurm":
        template = job_template(profile, "build_template")
        check_template(template)
    return make_builder(mode, apptainer=profile.apptainer, modules=profile.modules,
                        fakeroot=fakeroot, sbatch_lines=lines, template=template)
