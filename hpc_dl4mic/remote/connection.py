"""A cluster reached over SSH: :class:`SshHost`, the :class:`~hpc_dl4mic.remote.host.Host`
of one SSH connection (a chain of paramiko Transports through any jump hosts) for a whole
command: commands on session channels, files over SFTP, ports over direct-tcpip channels.

paramiko is imported inside functions only, so that importing this module (and
``hpc-dl4mic --help``) stays fast.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, RemoteError
from . import transfer
from .auth import KbdHandler, stdin_is_tty, terminal_prompt
from .commands import run_command, stream_command
from .host import FileInfo, TreeReport, absolute
from .messages import _one_line
from .runner import Result
from .sftpops import (
    SftpErrors,
    checksum_failure,
    file_info,
    parse_sha256sum,
    part_path,
    quiet_prefetch_threads,
    resume_offset,
)
from .target import SshTarget, ssh_target
from .transport import open_chain

if TYPE_CHECKING:
    from ..jobs.slurm import SlurmScheduler
    from .tunnel import LocalForward

Say = Callable[[str], None]
DEFAULT_CONNECT_TIMEOUT = 15.0


class SshHost:
    """One SSH connection for a whole command; implements :class:`~.host.Host`.

    Paths are absolute on the host after :func:`~.host.absolute` (``~`` is the home, and
    so is the working folder: relative paths are relative to the login folder). Use
    :meth:`open`, ideally as a context manager.
    """

    def __init__(self, target: SshTarget, transports: list[Any]) -> None:
        self.target = target
        self.display = target.display
        self.local = False
        self._transports = transports
        self._sftp: Any = None
        self._home: str | None = None
        self._lock = threading.Lock()

    # ---- opening

    @classmethod
    def open(cls, target: SshTarget | str, *, accept_new_host_key: bool = False,
             known_hosts: Path | None = None, kbd_handler: KbdHandler | None = None,
             connect_timeout: float | None = None) -> SshHost:
        """Connect, verify every hop's host key, authenticate; RemoteError on failure.

        Host keys are checked against ``known_hosts`` alone when given (new keys are
        written there); otherwise against each hop's UserKnownHostsFile, ~/.ssh/known_hosts
        and /etc/ssh/ssh_known_hosts (new keys go to the first of the first two).
        ``kbd_handler`` answers keyboard-interactive/password/passphrase prompts; by
        default the terminal is asked when stdin is a TTY, and nothing is asked otherwise.
        ``connect_timeout`` (per hop: TCP connect, then the SSH handshake) defaults to the
        target's (a profile's ``connect_timeout``, ConnectTimeout in ~/.ssh/config), else
        15 s.
        """
        if isinstance(target, str):
            target = ssh_target(target)
        if kbd_handler is None and stdin_is_tty():
            kbd_handler = terminal_prompt
        timeout = connect_timeout or target.connect_timeout or DEFAULT_CONNECT_TIMEOUT
        transports = open_chain(target, accept_new_host_key=accept_new_host_key,
                                known_hosts=known_hosts, kbd_handler=kbd_handler,
                                timeout=timeout)
        return cls(target, transports)

    def __enter__(self) -> SshHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def transport(self) -> Any:
        """The paramiko Transport to the target (after any jump hosts)."""
        return self._transports[-1]

    def is_active(self) -> bool:
        """Whether the connection is still up."""
        return bool(self._transports) and self.transport.is_active()

    def close(self) -> None:
        """Close SFTP and every transport (target first, then jump hosts). Idempotent."""
        with self._lock:
            if self._sftp is not None:
                try:
                    self._sftp.close()
                except Exception:
                    pass
                self._sftp = None
            for t in reversed(self._transports):
                t.close()

    # ---- commands and ports

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> Result:
        """Run ``argv`` on the remote host (words quoted, no shell interpretation)."""
        return run_command(self.transport, argv, where=self.target.hostname, lost=self._lost,
                           check=check, input=input, timeout=timeout, env=env, cwd=cwd)

    def stream(self, argv: Sequence[str], *, on_line: Say | None = None, check: bool = True,
               timeout: float | None = None, env: Mapping[str, str] | None = None,
               cwd: str | None = None) -> Result:
        """Run ``argv`` remotely with stdout+stderr merged, handing each line to ``on_line``
        as it arrives (like :meth:`LocalRunner.stream`)."""
        return stream_command(self.transport, argv, where=self.target.hostname,
                              lost=self._lost, on_line=on_line, check=check,
                              timeout=timeout, env=env, cwd=cwd)

    def _lost(self, what: str, exc: BaseException | None) -> RemoteError:
        detail = f": {_one_line(exc)}" if exc is not None and str(exc) else ""
        if not self.transport.is_active():
            detail = ": the SSH connection was lost" + detail
        return RemoteError(f"ssh {self.target.display}: {what}{detail}")

    def forward(self, remote_host: str, remote_port: int, *, local_port: int = 0,
                via: str = "paramiko") -> LocalForward:
        """A local port forward (127.0.0.1:local_port → remote_host:remote_port), through
        this connection (``via="paramiko"``) or the system's ``ssh -N -L`` (``"openssh"``)."""
        from .tunnel import LocalForward, OpenSshForward

        if via == "openssh":
            return OpenSshForward(self.target, remote_host, remote_port,  # type: ignore
                                  local_port=local_port)
        return LocalForward(self, remote_host, remote_port, local_port=local_port)

    def scheduler(self) -> SlurmScheduler:
        """SLURM (sbatch, scontrol, scancel) on this host."""
        from ..jobs.slurm import SlurmScheduler

        return SlurmScheduler(self)

    # ---- paths

    def sftp(self) -> Any:
        """The (cached) paramiko SFTPClient of this connection."""
        import paramiko

        with self._lock:
            if self._sftp is None:
                quiet_prefetch_threads()
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(self.transport)
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    raise self._lost("cannot start SFTP", exc) from exc
            return self._sftp

    def home(self) -> str:
        """The remote user's home directory."""
        if self._home is None:
            with self._sftp_errors("find the home directory of", "."):
                self._home = self.sftp().normalize(".")
        return self._home

    def cwd(self) -> str:
        """Where relative paths start: the login folder, i.e. the home directory."""
        return self.home()

    def _path(self, path: str) -> str:
        return absolute(str(path), home=self.home(), cwd=self.cwd())

    def _sftp_errors(self, op: str, path: str) -> SftpErrors:
        return SftpErrors(self.target.display, self.is_active, op, path)

    # ---- files

    def stat(self, path: str) -> FileInfo | None:
        """What ``path`` is (links not followed); None when there is nothing there."""
        path = self._path(path)
        with self._sftp_errors("check", path):
            try:
                attrs = self.sftp().lstat(path)
            except FileNotFoundError:
                return None
        return file_info(path, attrs)

    def listdir(self, path: str) -> list[FileInfo]:
        """The entries of a folder (links not followed), by name."""
        path = self._path(path)
        with self._sftp_errors("list", path):
            entries = self.sftp().listdir_attr(path)
        return sorted((file_info(posixpath.join(path, e.filename), e) for e in entries),
                      key=lambda info: info.name)

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists remotely (links followed)."""
        path = self._path(path)
        try:
            self.sftp().stat(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise RemoteError(f"ssh {self.target.display}: cannot check {path}: "
                              f"{_one_line(exc.strerror or exc)}") from exc
        return True

    def makedirs(self, path: str, mode: int = 0o700) -> None:
        """``mkdir -p`` over SFTP; directories it creates get ``mode`` (not umask-reduced)."""
        import stat as st

        path = self._path(path)
        sftp = self.sftp()
        with self._sftp_errors("create directory", path):
            try:
                attrs = sftp.stat(path)
            except FileNotFoundError:
                parent = posixpath.dirname(path.rstrip("/"))
                if parent and parent != path:
                    self.makedirs(parent, mode)
                try:
                    sftp.mkdir(path, mode)
                except OSError:
                    if not self.exists(path):  # not a lost race with another mkdir
                        raise
                else:
                    sftp.chmod(path, mode)
                attrs = sftp.stat(path)
            if not st.S_ISDIR(attrs.st_mode or 0):
                raise FileExistsError(17, "exists and is not a directory")

    def chmod(self, path: str, mode: int) -> None:
        """Set the permission bits of ``path``."""
        path = self._path(path)
        with self._sftp_errors("chmod", path):
            self.sftp().chmod(path, mode)

    def remove(self, path: str) -> None:
        """Delete a file (or link); nothing there is fine."""
        path = self._path(path)
        with self._sftp_errors("remove", path):
            try:
                self.sftp().remove(path)
            except FileNotFoundError:
                pass

    def _temp_name(self, path: str) -> str:
        head, tail = posixpath.split(path)
        return posixpath.join(head, f".{tail}.tmp-{secrets.token_hex(6)}")

    def _replace(self, tmp: str, path: str) -> None:
        sftp = self.sftp()
        try:
            sftp.posix_rename(tmp, path)
        except OSError as exc:
            if exc.errno is not None or "unsupported" not in str(exc).lower():
                raise
            # Server without posix-rename@openssh.com: plain rename refuses to overwrite.
            try:
                sftp.remove(path)
            except FileNotFoundError:
                pass
            sftp.rename(tmp, path)

    def write_file(self, path: str, data: bytes | str, mode: int = 0o600) -> None:
        """Write ``data`` atomically: temp file (``mode`` set before any data), then rename."""
        path = self._path(path)
        payload = data.encode() if isinstance(data, str) else bytes(data)
        sftp = self.sftp()
        tmp = self._temp_name(path)
        with self._sftp_errors("write", path):
            try:
                with sftp.open(tmp, "wx") as f:
                    f.chmod(mode)
                    f.set_pipelined(True)
                    f.write(payload)
                self._replace(tmp, path)
            except BaseException:
                _quietly(sftp.remove, tmp)
                raise

    def read_file(self, path: str) -> bytes:
        """The bytes of a remote file."""
        path = self._path(path)
        with self._sftp_errors("read", path):
            with self.sftp().open(path, "rb") as f:
                f.prefetch()
                return f.read()

    # ---- transfers

    def put(self, local: str | Path, remote: str, mode: int | None = None) -> None:
        """Upload a file atomically; mode defaults to the local file's, mtime is kept."""
        local = Path(local)
        try:
            st = local.stat()
            src = local.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read {local}: {exc.strerror}") from exc
        path = self._path(remote)
        sftp = self.sftp()
        tmp = self._temp_name(path)
        with src, self._sftp_errors("upload to", path):
            try:
                with sftp.open(tmp, "wx") as f:
                    f.chmod(st.st_mode & 0o777 if mode is None else mode)
                    f.set_pipelined(True)
                    while chunk := src.read(1 << 20):
                        f.write(chunk)
                sftp.utime(tmp, (st.st_atime, st.st_mtime))
                self._replace(tmp, path)
            except BaseException:
                _quietly(sftp.remove, tmp)
                raise

    def get(self, remote: str, local: str | Path, *, resume: bool = False) -> None:
        """Download a file atomically (into ``.<name>.part`` next to ``local``, then
        renamed); keeps mtime. ``resume``: a ``.part`` left by an interrupted download is
        continued from its size (and kept when this one is interrupted too)."""
        path = self._path(remote)
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        part = part_path(local)
        sftp = self.sftp()
        done = False
        try:
            with self._sftp_errors("download", path):
                attrs = sftp.stat(path)
                size = attrs.st_size or 0
                offset = resume_offset(_size(part) if resume else None, size)
                with sftp.open(path, "rb") as src, open(part, "r+b" if offset else "wb") as dst:
                    dst.truncate(offset)
                    dst.seek(offset)
                    src.seek(offset)
                    src.prefetch(size)
                    while block := src.read(1 << 20):
                        dst.write(block)
                    got = dst.tell()
                if got != size:
                    raise RemoteError(f"ssh {self.display}: cannot download {path}: it changed "
                                      f"during the download ({got} bytes, not {size})")
            if attrs.st_mtime is not None:
                os.utime(part, (attrs.st_atime or attrs.st_mtime, attrs.st_mtime))
            os.replace(part, local)
            done = True
        finally:
            if not done and not resume:
                part.unlink(missing_ok=True)

    def checksums(self, paths: Sequence[str]) -> dict[str, str]:
        """The sha256 of each remote file (one ``sha256sum`` command), by the path given."""
        if not paths:
            return {}
        full = [self._path(p) for p in paths]
        result = self.run(["sha256sum", "--", *full], check=False)
        if result.returncode != 0:
            bad, reason = checksum_failure(result.stderr, full)
            raise RemoteError(f"ssh {self.display}: cannot checksum {bad}: {reason}")
        try:
            digests = parse_sha256sum(result.stdout, full)
        except ValueError as exc:
            raise RemoteError(f"ssh {self.display}: cannot checksum {full[0]}: unexpected "
                              f"sha256sum output: {exc}") from None
        return dict(zip(paths, digests))

    def put_tree(self, local: Path, remote: str, *, say: Say | None = None) -> TreeReport:
        """Copy a local folder here (see :func:`~.transfer.put_tree`)."""
        return transfer.put_tree(self, Path(local), self._path(remote), say=say)

    def get_tree(self, remote: str, local: Path, *, say: Say | None = None) -> TreeReport:
        """Copy a folder from here (see :func:`~.transfer.get_tree`)."""
        return transfer.get_tree(self, self._path(remote), Path(local), say=say)




def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        pass
