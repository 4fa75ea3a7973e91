"""The build lock of an image cache on a host reached by commands (a cluster): a holder
process on the host keeps an exclusive ``flock`` on ``CACHE/.tmp/<stem>.lock`` for as long
as this command needs it.

The lock spans the whole build flow (the re-check after the wait, the upload, the build on
the login node or in a SLURM build job, the move into place and the record), which is many
remote commands, so it is held by one long-running command of its own (:data:`HOLDER`,
started through :meth:`Host.stream` in a thread) rather than by any one of them:

* it prints ``pid N``, then ``waiting WHO`` once a second while another process holds the
  lock (``WHO``: the user the holder wrote into the file), then ``locked``, then ``held``
  every two seconds;
* every line it prints doubles as a liveness check: when this command dies (Ctrl-C, kill,
  a dropped connection) the next write fails, the holder ends and the kernel releases the
  lock, so no stale lock can block others;
* a TERM (the release) makes it remove the file (when it may: another member's file in a
  sticky ``.tmp`` stays) before it exits; a waiter that then holds the lock of a removed
  file opens the path again.

The file is created with an explicit mode whatever the user's umask: 0660 in a shared
(group-writable, setgid) cache so every member of the group can lock it, else 0600; never
world-writable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import RemoteError

if TYPE_CHECKING:
    from ..remote.host import Host

Say = Callable[[str], None]
CONFLICT = 75  # flock's exit status when the lock is busy (-E), unlike its own errors

# bash (not sh): a failed ``exec 9>>FILE`` must not end the shell, and ``[ A -ef /dev/fd/9 ]``
# compares the shell's own fd 9 with the path (the same file, not one removed meanwhile).
HOLDER = r"""lock=$1
umask "$2"
echo "pid $$"
while :; do
  exec 9>>"$lock" 2>/dev/null || exec 9<"$lock" 2>/dev/null || {
    echo "error: cannot open $lock"; exit 3; }
  while :; do
    flock -E 75 -w 1 9; rc=$?
    [ "$rc" = 0 ] && break
    [ "$rc" = 75 ] || { echo "error: flock failed on $lock (exit $rc)"; exit 3; }
    printf 'waiting %s\n' "$(head -c 64 -- "$lock" 2>/dev/null | tr -cd 'A-Za-z0-9._-')" ||
      exit 1
  done
  [ "$lock" -ef /dev/fd/9 ] && break
  exec 9>&-
done
trap 'rm -f -- "$lock" 2>/dev/null; exit 0' TERM
id -un > "$lock" 2>/dev/null
echo locked
while echo held; do sleep 2 9>&- >/dev/null 2>&1 & wait "$!"; done
exit 1
"""


def holder_argv(path: str, mode: int) -> list[str]:
    """The holder command for the lock file ``path``, created with ``mode`` (argv: every
    value a separate word, quoted by the host's command layer)."""
    return ["bash", "-c", HOLDER, "hpc-dl4mic-lock", path, f"{0o777 & ~mode:04o}"]


@dataclass
class LockState:
    """What taking the lock was like: whether it had to wait, and for whom."""

    waited: bool = False
    holder: str = ""  # the user whose build it waited for ('' if unknown)
    seconds: float = 0.0


class HostLock:
    """An exclusive lock on ``path`` on ``host``, held by a holder process (see module)."""

    def __init__(self, host: Host, path: str, *, mode: int, what: str, say: Say,
                 interval: float = 15.0, start_timeout: float = 120.0) -> None:
        self.host, self.path, self.mode, self.what = host, path, mode, what
        self.say, self.interval, self.start_timeout = say, interval, start_timeout
        self.state = LockState()
        self.pid = ""
        self.locked = False
        self.errors: list[str] = []
        self.failure: BaseException | None = None
        self.changed = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True,
                                       name="hpc-dl4mic-build-lock")

    # -- the holder's side ------------------------------------------------------------------
    def _hold(self) -> None:
        try:
            self.host.stream(holder_argv(self.path, self.mode), on_line=self._line,
                             check=False)
        except BaseException as exc:  # noqa: BLE001 - reported by acquire()
            self.failure = exc
        finally:
            self.changed.set()

    def _line(self, line: str) -> None:
        word, _, rest = line.strip().partition(" ")
        if word == "pid":
            self.pid = rest
        elif word == "waiting":
            self.state.waited = True
            self.state.holder = rest or self.state.holder
        elif word == "locked":
            self.locked = True
        elif word == "error:":
            self.errors.append(line.strip())
        else:
            return
        self.changed.set()

    # -- this command's side ----------------------------------------------------------------
    def acquire(self) -> LockState:
        """Wait for the lock (a progress line with the elapsed time every ``interval``
        seconds, the first after a second); an interrupt stops the holder."""
        started = time.monotonic()
        shown = None
        self.thread.start()
        try:
            while not self.locked:
                self.changed.wait(0.5)
                self.changed.clear()
                if self.locked:
                    break
                if not self.thread.is_alive():
                    raise self._failed()
                now = time.monotonic()
                if not self.state.waited and now - started > self.start_timeout:
                    raise RemoteError(f"build lock {self.path} on {self.host.display}: the "
                                      f"lock holder did not start within "
                                      f"{self.start_timeout:g} s")
                if self.state.waited and (shown is None or now - shown >= self.interval):
                    who = f"{self.state.holder}'s" if self.state.holder else "another"
                    self.say(f"waiting for {who} build of {self.what} (lock {self.path}): "
                             f"{now - started:.0f} s")
                    shown = now
        except BaseException:
            self.release()
            raise
        self.state.seconds = time.monotonic() - started
        return self.state

    def _failed(self) -> RemoteError:
        if isinstance(self.failure, RemoteError):
            return self.failure
        reason = self.errors[-1][len("error: "):] if self.errors else (
            str(self.failure).splitlines()[0] if self.failure else "the lock holder ended")
        return RemoteError(f"build lock {self.path} on {self.host.display}: {reason}")

    def release(self) -> None:
        """Stop the holder (it removes the file when it may); best effort, bounded."""
        if self.thread.is_alive() and self.pid.isdigit():
            try:
                self.host.run(["kill", "-TERM", self.pid], check=False, timeout=30)
            except Exception:  # noqa: BLE001 - the holder also ends with the connection
                pass
        if self.thread.ident is not None:
            self.thread.join(timeout=15)

    def __enter__(self) -> LockState:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
