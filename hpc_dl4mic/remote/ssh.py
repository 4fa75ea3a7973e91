"""SSH to the cluster: ~/.ssh/config, known_hosts verification, one Transport per command.

paramiko is imported inside functions only, so that importing this module (and
``hpc-dl4mic --help``) stays fast.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os
import posixpath
import re
import secrets
import shlex
import socket
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import CommandError, InputError, RemoteError
from .messages import _one_line, channel_open_error  # noqa: F401 (re-exported)
from .runner import Result, command_failed

if TYPE_CHECKING:
    from .tunnel import LocalForward

DEFAULT_PORT = 22
MAX_JUMP_DEPTH = 8
KEEPALIVE_SECONDS = 30
# Measured faster than the ctr ciphers with paramiko (local-cluster.md); cbc/3des are
# dropped as OpenSSH's client does.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
           "aes128-ctr", "aes192-ctr", "aes256-ctr")
DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")

KbdHandler = Callable[[str, str, Sequence[tuple[str, bool]]], Sequence[str]]
"""``handler(title, instructions, [(prompt, echo), ...]) -> answers`` (paramiko's shape)."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class SshTarget:
    """Where to connect and as whom, after ~/.ssh/config and explicit options are applied."""

    alias: str
    hostname: str
    port: int = DEFAULT_PORT
    user: str = ""
    identity_files: tuple[Path, ...] = ()
    proxy_jump: tuple[SshTarget, ...] = ()
    known_hosts: tuple[Path, ...] = ()
    host_key_alias: str | None = None
    identities_only: bool = False
    proxy_command: str | None = None

    @property
    def display(self) -> str:
        """``user@host:port``, as used in messages."""
        return f"{self.user}@{self.hostname}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The name this host has in known_hosts (``host`` or ``[host]:port``)."""
        if self.host_key_alias:
            return self.host_key_alias
        if self.port == DEFAULT_PORT:
            return self.hostname
        return f"[{self.hostname}]:{self.port}"

    def __str__(self) -> str:
        return self.display


def parse_destination(text: str) -> tuple[str | None, str, int | None]:
    """Split ``[ssh://][user@]host[:port]`` (or ``[v6addr]:port``) into (user, host, port)."""
    s = text.strip()
    if s.startswith("ssh://"):
        s = s[len("ssh://"):].rstrip("/")
    user: str | None = None
    if "@" in s:
        user, s = s.rsplit("@", 1)
    port: int | None = None
    port_text = ""
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        if rest.startswith(":"):
            port_text = rest[1:]
    elif s.count(":") == 1:
        host, port_text = s.split(":")
    else:
        host = s
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InputError(f"bad SSH port in {text!r}: give a number from 1 to 65535")
        port = int(port_text)
    if not host or (user is not None and not user):
        raise InputError(f"bad SSH destination {text!r}: expected [user@]host[:port]")
    return user, host, port


def _load_ssh_config(path: Path | None) -> Any:
    import paramiko

    if path is None:
        default = Path("~/.ssh/config").expanduser()
        if not default.is_file():
            return paramiko.SSHConfig()
        path = default
    elif not Path(path).is_file():
        raise InputError(f"SSH config file {path} not found: give an existing file")
    try:
        return paramiko.SSHConfig.from_path(str(path))
    except OSError as exc:
        raise InputError(f"cannot read SSH config {path}: {exc.strerror}") from exc
    except Exception as exc:  # paramiko raises ConfigParseError and friends
        raise InputError(f"cannot parse SSH config {path}: {_one_line(exc)}") from exc


def resolve_target(host: str, *, user: str | None = None, port: int | None = None,
                   identity: str | Path | Sequence[str | Path] | None = None,
                   proxy_jump: str | Sequence[str | SshTarget] | None = None,
                   ssh_config: Path | None = None) -> SshTarget:
    """Resolve ``host`` (an ~/.ssh/config alias or ``[user@]host[:port]``) to an SshTarget.

    HostName, User, Port, IdentityFile, IdentitiesOnly, ProxyJump (a comma-separated
    chain, each hop resolved through the same config), ProxyCommand, HostKeyAlias and
    UserKnownHostsFile are read from the config; explicit arguments win over it.
    A missing explicit identity file is an InputError.
    """
    config = _load_ssh_config(ssh_config)
    identities: list[Path] = []
    if identity is not None:
        items = [identity] if isinstance(identity, (str, Path)) else list(identity)
        for item in items:
            path = Path(item).expanduser()
            if not path.is_file():
                raise InputError(f"SSH key file {path} not found: give an existing private key")
            identities.append(path)
    return _resolve(host, config, user=user, port=port, identities=identities,
                    proxy_jump=proxy_jump, depth=0)


def _resolve(dest: str, config: Any, *, user: str | None, port: int | None,
             identities: list[Path], proxy_jump: str | Sequence[str | SshTarget] | None,
             depth: int) -> SshTarget:
    if depth > MAX_JUMP_DEPTH:
        raise InputError(f"ProxyJump chain deeper than {MAX_JUMP_DEPTH} hops at {dest!r}: "
                         "check ~/.ssh/config for a loop")
    dest_user, alias, dest_port = parse_destination(dest)
    opts = config.lookup(alias)
    hostname = opts.get("hostname", alias)
    user = user or dest_user or opts.get("user") or getpass.getuser()
    if port is None:
        port = dest_port
    if port is None:
        try:
            port = int(opts.get("port", DEFAULT_PORT))
        except ValueError as exc:
            raise InputError(f"bad Port in ~/.ssh/config for {alias!r}: give a number") from exc
    files = list(identities) + [Path(p).expanduser() for p in opts.get("identityfile", [])
                                if Path(p).expanduser() not in identities]
    known = tuple(Path(p).expanduser() for p in opts.get("userknownhostsfile", "").split())

    jump_spec: str | Sequence[str | SshTarget] | None = proxy_jump
    if jump_spec is None:
        jump_spec = opts.get("proxyjump")
    hops: list[SshTarget] = []
    if isinstance(jump_spec, str):
        jump_items: list[str | SshTarget] = (
            [] if jump_spec.strip().lower() == "none"
            else [h.strip() for h in jump_spec.split(",") if h.strip()])
    else:
        jump_items = list(jump_spec or [])
    for i, item in enumerate(jump_items):
        if isinstance(item, SshTarget):
            hops.append(item)
            continue
        # As OpenSSH: only the first hop follows its own ProxyJump; later hops are
        # reached through the previous one.
        hops.append(_resolve(item, config, user=None, port=None, identities=[],
                             proxy_jump=None if i == 0 else "none", depth=depth + 1))
    proxy_command = opts.get("proxycommand")
    if proxy_command and proxy_command.strip().lower() == "none":
        proxy_command = None
    return SshTarget(
        alias=alias, hostname=hostname, port=port, user=user,
        identity_files=tuple(files), proxy_jump=tuple(hops), known_hosts=known,
        host_key_alias=opts.get("hostkeyalias"),
        identities_only=str(opts.get("identitiesonly", "no")).lower() == "yes",
        proxy_command=None if hops else proxy_command,
    )


def _chain(target: SshTarget) -> list[SshTarget]:
    """The hops to connect in order, ending with ``target`` itself."""
    hops: list[SshTarget] = []
    for hop in target.proxy_jump:
        hops.extend(_chain(resolve_target(hop) if isinstance(hop, str) else hop))
    hops.append(replace(target, proxy_jump=()))
    return hops


# --------------------------------------------------------------------------- host keys


def fingerprint(key: Any) -> str:
    """OpenSSH-style ``SHA256:<base64, no padding>`` of a paramiko key or a key blob."""
    blob = key if isinstance(key, (bytes, bytearray)) else key.asbytes()
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class KnownHostEntry:
    """One key line of a known_hosts file."""

    path: Path
    lineno: int
    patterns: tuple[str, ...]
    keytype: str
    blob: bytes
    marker: str | None = None

    def matches(self, name: str) -> bool:
        """Whether this line applies to ``name`` (plain, hashed, wildcard or negated)."""
        name = name.lower()
        hit = False
        for pattern in self.patterns:
            if pattern.startswith("|1|"):
                hit = hit or _hashed_matches(pattern, name)
            elif pattern.startswith("!"):
                if _glob_matches(pattern[1:], name):
                    return False
            elif _glob_matches(pattern, name):
                hit = True
        return hit


def _hashed_matches(pattern: str, name: str) -> bool:
    try:
        _, _, salt, digest = pattern.split("|", 3)
        mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(mac, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def _glob_matches(pattern: str, name: str) -> bool:
    # Only * and ? are wildcards: "[" is literal, as in "[host]:port".
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                    for c in pattern.lower())
    return re.fullmatch(regex, name) is not None


def read_known_hosts(paths: Sequence[Path]) -> list[KnownHostEntry]:
    """Key lines of the given known_hosts files (missing files are skipped)."""
    entries: list[KnownHostEntry] = []
    for path in paths:
        try:
            text = Path(path).read_text(errors="replace")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise InputError(f"cannot read known_hosts file {path}: {exc.strerror}") from exc
        for lineno, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            marker = None
            if fields[0].startswith("@"):
                marker, fields = fields[0], fields[1:]
            if len(fields) < 3:
                continue
            try:
                blob = base64.b64decode(fields[2], validate=True)
            except ValueError:
                continue
            entries.append(KnownHostEntry(Path(path), lineno, tuple(fields[0].split(",")),
                                          fields[1], blob, marker))
    return entries


def check_host_key(name: str, keytype: str, blob: bytes,
                   entries: Sequence[KnownHostEntry]) -> tuple[str, KnownHostEntry | None]:
    """Classify a server key: ("ok"|"unknown"|"changed"|"revoked", the relevant entry)."""
    mine = [e for e in entries if e.marker is None and e.matches(name)]
    for e in entries:
        if e.marker == "@revoked" and e.blob == blob:
            return "revoked", e
    for e in mine:
        if e.blob == blob:
            return "ok", e
    if not mine:
        return "unknown", None
    same_type = [e for e in mine if e.keytype == keytype]
    return "changed", (same_type or mine)[0]


def append_known_host(path: Path, name: str, keytype: str, blob: bytes) -> None:
    """Append ``name keytype key`` to a known_hosts file (created 0600, dir 0700)."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as f:
        if f.tell() > 0:
            with open(path, "rb") as r:
                r.seek(-1, os.SEEK_END)
                if r.read(1) != b"\n":
                    f.write(b"\n")
        f.write(f"{name} {keytype} {base64.b64encode(blob).decode()}\n".encode())


def _default_known_hosts() -> Path:
    return Path("~/.ssh/known_hosts").expanduser()


def _preferred_key_types(current: Sequence[str], known: Sequence[KnownHostEntry]) -> list[str]:
    """Put the host key algorithms we already know for this host first (as OpenSSH does)."""
    wanted: list[str] = []
    for e in known:
        names = ["rsa-sha2-512", "rsa-sha2-256"] if e.keytype == "ssh-rsa" else [e.keytype]
        wanted += [n for n in names if n in current and n not in wanted]
    return wanted + [t for t in current if t not in wanted]


# --------------------------------------------------------------------------- prompting


def terminal_prompt(title: str, instructions: str,
                    prompts: Sequence[tuple[str, bool]]) -> list[str]:
    """Ask keyboard-interactive / password / passphrase questions on the terminal."""
    for text in (title, instructions):
        if text:
            print(text, file=sys.stderr)
    return [input(p) if echo else getpass.getpass(p) for p, echo in prompts]


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


# --------------------------------------------------------------------------- commands


def remote_command(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                   cwd: str | None = None) -> str:
    """The shell line that runs ``argv`` literally on the remote side (every word quoted)."""
    argv = [str(a) for a in argv]
    if not argv:
        raise ValueError("empty argv")
    command = shlex.join(argv)
    if env:
        for key in env:
            if not _ENV_NAME.match(key):
                raise ValueError(f"bad environment variable name {key!r}")
        command = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + \
            " " + command
    if cwd:
        cwd = str(cwd)
        if cwd == "~":
            quoted = "~"
        elif cwd.startswith("~/"):
            quoted = "~/" + shlex.quote(cwd[2:])
        else:
            quoted = shlex.quote(cwd)
        command = f"cd {quoted} && {command}"
    return command


# --------------------------------------------------------------------------- connection


class Connection:
    """One SSH connection (a chain of Transports through any jump hosts) for a whole command.

    Implements the :class:`~hpc_dl4mic.runner.Runner` protocol, plus SFTP helpers and
    local port forwards. Use :meth:`open`, ideally as a context manager.
    """

    def __init__(self, target: SshTarget, transports: list[Any]) -> None:
        self.target = target
        self._transports = transports
        self._sftp: Any = None
        self._home: str | None = None
        self._lock = threading.Lock()

    # ---- opening

    @classmethod
    def open(cls, target: SshTarget | str, *, accept_new_host_key: bool = False,
             known_hosts: Path | None = None, kbd_handler: KbdHandler | None = None,
             connect_timeout: float = 15.0) -> Connection:
        """Connect, verify every hop's host key, authenticate; RemoteError on failure.

        Host keys are checked against ``known_hosts`` alone when given (new keys are
        written there); otherwise against each hop's UserKnownHostsFile, ~/.ssh/known_hosts
        and /etc/ssh/ssh_known_hosts (new keys go to the first of the first two).
        ``kbd_handler`` answers keyboard-interactive/password/passphrase prompts; by
        default the terminal is asked when stdin is a TTY, and nothing is asked otherwise.
        """
        if isinstance(target, str):
            target = resolve_target(target)
        if kbd_handler is None and _stdin_is_tty():
            kbd_handler = terminal_prompt
        transports: list[Any] = []
        chain = _chain(target)
        try:
            for i, hop in enumerate(chain):
                transports.append(_open_transport(
                    hop, via=transports[-1] if transports else None,
                    accept_new_host_key=accept_new_host_key, known_hosts=known_hosts,
                    kbd_handler=kbd_handler, timeout=connect_timeout,
                    is_jump=i < len(chain) - 1))
        except BaseException:
            for t in reversed(transports):
                t.close()
            raise
        return cls(target, transports)

    def __enter__(self) -> Connection:
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

    # ---- commands

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None) -> Result:
        """Run ``argv`` on the remote host (words quoted, no shell interpretation)."""
        import paramiko

        argv = [str(a) for a in argv]
        command = remote_command(argv, env=env, cwd=cwd)
        try:
            chan = self.transport.open_session(timeout=timeout or 30.0)
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._lost(f"cannot start {argv[0]}", exc) from exc
        out: list[bytes] = []
        err: list[bytes] = []

        def pump(recv: Callable[[int], bytes], sink: list[bytes]) -> None:
            try:
                while data := recv(65536):
                    sink.append(data)
            except (OSError, EOFError):
                pass

        def feed() -> None:
            try:
                if input:
                    chan.sendall(input.encode())
                chan.shutdown_write()
            except (OSError, EOFError):
                pass  # the command exited without reading all of it

        threads = [threading.Thread(target=pump, args=(chan.recv, out), daemon=True),
                   threading.Thread(target=pump, args=(chan.recv_stderr, err), daemon=True),
                   threading.Thread(target=feed, daemon=True)]
        for t in threads:
            t.start()
        try:
            if not chan.status_event.wait(timeout):
                raise CommandError(f"{argv[0]} timed out after {timeout:g} s on "
                                   f"{self.target.hostname}", argv=argv)
            # Output precedes the exit status; a background child holding stdout open
            # must not hang us (OpenSSH's client would), so the wait is bounded.
            for t in threads[:2]:
                t.join(5.0)
        finally:
            chan.close()
            for t in threads:
                t.join(1.0)
        status = chan.exit_status
        if status == -1 and not self.transport.is_active():
            raise self._lost(f"{argv[0]} did not finish", None)
        result = Result(argv, status, b"".join(out).decode("utf-8", "replace"),
                        b"".join(err).decode("utf-8", "replace"))
        if check and status != 0:
            raise command_failed(result)
        return result

    def stream(self, argv: Sequence[str], *, on_line: Callable[[str], None] | None = None,
               check: bool = True, timeout: float | None = None,
               env: Mapping[str, str] | None = None, cwd: str | None = None) -> Result:
        """Run ``argv`` remotely with stdout+stderr merged, handing each line to ``on_line``
        as it arrives (like :meth:`LocalRunner.stream`)."""
        import time

        import paramiko

        argv = [str(a) for a in argv]
        command = remote_command(argv, env=env, cwd=cwd)
        try:
            chan = self.transport.open_session(timeout=30.0)
            chan.set_combine_stderr(True)
            chan.exec_command(command)
            chan.shutdown_write()
            chan.settimeout(1.0)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._lost(f"cannot start {argv[0]}", exc) from exc
        deadline = None if timeout is None else time.monotonic() + timeout
        chunks: list[bytes] = []
        pending = b""
        try:
            while True:
                if deadline is not None and time.monotonic() > deadline:
                    raise CommandError(f"{argv[0]} timed out after {timeout:g} s on "
                                       f"{self.target.hostname}", argv=argv,
                                       stderr=b"".join(chunks).decode("utf-8", "replace"))
                try:
                    data = chan.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                chunks.append(data)
                pending += data
                *lines, pending = pending.split(b"\n")
                if on_line is not None:
                    for line in lines:
                        on_line(line.decode("utf-8", "replace"))
            if pending and on_line is not None:
                on_line(pending.decode("utf-8", "replace"))
            chan.status_event.wait(10.0)
        finally:
            chan.close()
        status = chan.exit_status
        if status == -1 and not self.transport.is_active():
            raise self._lost(f"{argv[0]} did not finish", None)
        output = b"".join(chunks).decode("utf-8", "replace")
        result = Result(argv, status, output, output)
        if check and status != 0:
            raise command_failed(result)
        return result

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

    # ---- SFTP

    def sftp(self) -> Any:
        """The (cached) paramiko SFTPClient of this connection."""
        import paramiko

        with self._lock:
            if self._sftp is None:
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

    def _abs(self, path: str) -> str:
        path = str(path)
        if path == "~":
            return self.home()
        if path.startswith("~/"):
            return posixpath.join(self.home(), path[2:])
        return path

    def _sftp_errors(self, op: str, path: str) -> _SftpErrors:
        return _SftpErrors(self, op, path)

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists remotely (``~/`` is the home directory)."""
        path = self._abs(path)
        try:
            self.sftp().stat(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise RemoteError(f"ssh {self.target.display}: cannot check {path}: "
                              f"{_one_line(exc.strerror or exc)}") from exc
        return True

    def makedirs(self, remote_path: str, mode: int = 0o700) -> None:
        """``mkdir -p`` over SFTP; directories it creates get ``mode`` (not umask-reduced)."""
        import stat as st

        path = self._abs(remote_path)
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

    def write_file(self, remote_path: str, data: bytes | str, mode: int = 0o600) -> None:
        """Write ``data`` atomically: temp file (``mode`` set before any data), then rename."""
        path = self._abs(remote_path)
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

    def read_file(self, remote_path: str) -> bytes:
        """The bytes of a remote file."""
        path = self._abs(remote_path)
        with self._sftp_errors("read", path):
            with self.sftp().open(path, "rb") as f:
                f.prefetch()
                return f.read()

    def put(self, local: str | Path, remote: str, mode: int | None = None) -> None:
        """Upload a file atomically; mode defaults to the local file's, mtime is kept."""
        local = Path(local)
        try:
            st = local.stat()
            src = local.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read {local}: {exc.strerror}") from exc
        path = self._abs(remote)
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

    def get(self, remote: str, local: str | Path) -> None:
        """Download a file atomically (temp file next to ``local``, then rename); keeps mtime."""
        path = self._abs(remote)
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.part-{secrets.token_hex(6)}")
        try:
            with self._sftp_errors("download", path):
                attrs = self.sftp().stat(path)
                self.sftp().get(path, str(tmp))
            if attrs.st_mtime is not None:
                os.utime(tmp, (attrs.st_atime or attrs.st_mtime, attrs.st_mtime))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)


class _SftpErrors:
    """Turns SFTP/SSH failures into one-line RemoteErrors naming the path."""

    def __init__(self, conn: Connection, op: str, path: str) -> None:
        self.conn, self.op, self.path = conn, op, path

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, (RemoteError, InputError)):
            return False
        import paramiko

        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc) or type(exc).__name__
        elif isinstance(exc, (paramiko.SSHException, EOFError)):
            reason = str(exc) or type(exc).__name__
            if not self.conn.transport.is_active():
                reason = "the SSH connection was lost"
        else:
            return False
        raise RemoteError(f"ssh {self.conn.target.display}: cannot {self.op} {self.path}: "
                          f"{_one_line(reason)}") from exc


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        pass


# --------------------------------------------------------------------------- transports


def _connect_socket(hop: SshTarget, via: Any, timeout: float) -> Any:
    import paramiko

    if via is not None:
        try:
            return via.open_channel("direct-tcpip", (hop.hostname, hop.port),
                                    ("127.0.0.1", 0), timeout=timeout)
        except paramiko.ChannelException as exc:
            raise RemoteError(f"ssh {hop.display}: the jump host could not connect to "
                              f"{hop.hostname}:{hop.port}: {channel_open_error(exc)}") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RemoteError(f"ssh {hop.display}: connecting through the jump host "
                              f"failed: {_one_line(exc) or type(exc).__name__}") from exc
    if hop.proxy_command:
        try:
            return paramiko.ProxyCommand(hop.proxy_command)
        except Exception as exc:
            raise RemoteError(f"ssh {hop.display}: ProxyCommand failed: "
                              f"{_one_line(exc)}") from exc
    try:
        sock = socket.create_connection((hop.hostname, hop.port), timeout=timeout)
    except socket.gaierror as exc:
        raise RemoteError(f"ssh {hop.display}: cannot resolve host name {hop.hostname!r}: "
                          "check the host (or HostName in ~/.ssh/config)") from exc
    except ConnectionRefusedError as exc:
        raise RemoteError(f"ssh {hop.display}: connection refused: check the host and "
                          "port, and that sshd runs there") from exc
    except (socket.timeout, TimeoutError) as exc:
        raise RemoteError(f"ssh {hop.display}: connection timed out after {timeout:g} s: "
                          "check the host, port and network (VPN?)") from exc
    except OSError as exc:
        raise RemoteError(f"ssh {hop.display}: cannot connect: "
                          f"{_one_line(exc.strerror or exc)}") from exc
    # paramiko never sets it; without it each new forwarded connection waits ~40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _quiet_paramiko_logging() -> None:
    # Without any handler, Python's last-resort handler would print paramiko's errors
    # (e.g. every refused forward) on stderr; our errors already say what went wrong.
    import logging

    logger = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _open_transport(hop: SshTarget, *, via: Any, accept_new_host_key: bool,
                    known_hosts: Path | None, kbd_handler: KbdHandler | None,
                    timeout: float, is_jump: bool) -> Any:
    import paramiko

    _quiet_paramiko_logging()

    what = f"jump host {hop.display}" if is_jump else hop.display
    if known_hosts is not None:
        files = [Path(known_hosts)]
        write_to = Path(known_hosts)
    else:
        default = _default_known_hosts()
        files = list(hop.known_hosts) + [default, Path("/etc/ssh/ssh_known_hosts")]
        files = list(dict.fromkeys(files))
        write_to = hop.known_hosts[0] if hop.known_hosts else default
    entries = read_known_hosts(files)
    name = hop.known_hosts_name
    sock = _connect_socket(hop, via, timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.handshake_timeout = timeout
        transport.auth_timeout = max(timeout, 60.0)
        sec = transport.get_security_options()
        sec.ciphers = tuple(c for c in CIPHERS if c in sec.ciphers) or sec.ciphers
        sec.key_types = _preferred_key_types(
            sec.key_types, [e for e in entries if e.marker is None and e.matches(name)])
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RemoteError(f"ssh {what}: SSH handshake failed: "
                              f"{_one_line(exc) or type(exc).__name__}") from exc
        key = transport.get_remote_server_key()
        _verify_host_key(what, name, key, entries, accept_new_host_key, write_to)
        _authenticate(transport, hop, what, kbd_handler)
        transport.set_keepalive(KEEPALIVE_SECONDS)
        return transport
    except BaseException:
        transport.close()
        raise


def _verify_host_key(what: str, name: str, key: Any, entries: Sequence[KnownHostEntry],
                     accept_new: bool, write_to: Path) -> None:
    keytype, blob = key.get_name(), key.asbytes()
    status, entry = check_host_key(name, keytype, blob, entries)
    shown = f"{keytype} {fingerprint(blob)}"
    if status == "ok":
        return
    if status == "revoked":
        raise RemoteError(f"ssh {what}: the host key {shown} is marked @revoked in "
                          f"{entry.path} line {entry.lineno}: refusing to connect")
    if status == "changed":
        assert entry is not None
        raise RemoteError(
            f"ssh {what}: HOST KEY CHANGED for {name}: the server sent {shown} but "
            f"{entry.path} line {entry.lineno} has {entry.keytype} {fingerprint(entry.blob)}; "
            "this may be an attack: if the admins confirm the new key, remove the old one "
            f"(ssh-keygen -R '{name}' -f {entry.path}) and connect again")
    if not accept_new:
        raise RemoteError(
            f"ssh {what}: unknown host key for {name}: {shown}; check this fingerprint with "
            "the cluster admins, then rerun with --accept-new-host-key to trust it "
            f"(it is saved in {write_to})")
    try:
        append_known_host(write_to, name, keytype, blob)
    except OSError as exc:
        raise InputError(f"cannot save the host key of {name} to {write_to}: "
                         f"{exc.strerror}") from exc


def _key_candidates(hop: SshTarget, what: str, kbd_handler: KbdHandler | None,
                    notes: list[str]) -> Iterator[tuple[Any, str]]:
    """Keys to offer, in OpenSSH's order: agent keys, then identity files."""
    import paramiko

    pub_blobs: set[bytes] = set()
    if hop.identities_only:
        for path in hop.identity_files:
            try:
                pub_blobs.add(base64.b64decode(
                    Path(f"{path}.pub").read_text().split()[1]))
            except (OSError, IndexError, ValueError):
                pass
    agent = None
    if os.environ.get("SSH_AUTH_SOCK"):
        try:
            agent = paramiko.Agent()
            agent_keys = list(agent.get_keys())
        except Exception:
            agent_keys = []
        for key in agent_keys:
            if hop.identities_only and key.asbytes() not in pub_blobs:
                continue
            yield key, f"agent key {fingerprint(key)}"
    try:
        files = list(hop.identity_files)
        explicit = bool(files)
        if not files:
            files = [Path("~/.ssh").expanduser() / n for n in DEFAULT_IDENTITIES]
        for path in files:
            if not path.exists():
                if explicit:
                    notes.append(f"{path} missing")
                continue
            key = _load_key(path, what, kbd_handler, notes)
            if key is not None:
                yield key, str(path)
    finally:
        if agent is not None:
            agent.close()


def _load_key(path: Path, what: str, kbd_handler: KbdHandler | None,
              notes: list[str]) -> Any:
    import paramiko

    try:
        return paramiko.PKey.from_path(path)
    except OSError as exc:
        raise InputError(f"cannot read SSH key file {path}: {exc.strerror or exc}: "
                         "fix its permissions or give another key") from exc
    except (TypeError, paramiko.PasswordRequiredException):
        pass  # encrypted: ask below
    except (ValueError, paramiko.SSHException) as exc:
        notes.append(f"{path} unusable ({_one_line(exc)})")
        return None
    if kbd_handler is None:
        notes.append(f"{path} is passphrase-protected and there is no terminal to ask "
                     "(load it into ssh-agent)")
        return None
    for _ in range(3):
        answer = list(kbd_handler("", "", [(f"Enter passphrase for key '{path}': ", False)]))
        try:
            return paramiko.PKey.from_path(path, answer[0] if answer else "")
        except (TypeError, ValueError, paramiko.SSHException):
            continue
    notes.append(f"{path} (wrong passphrase)")
    return None


def _authenticate(t: Any, hop: SshTarget, what: str, kbd_handler: KbdHandler | None) -> None:
    import paramiko

    user = hop.user
    try:
        t.auth_none(user)
        if t.is_authenticated():
            return
        allowed: list[str] = []
    except paramiko.BadAuthenticationType as exc:
        allowed = list(exc.allowed_types)
    except (paramiko.SSHException, EOFError) as exc:
        raise RemoteError(f"ssh {what}: authentication failed: {_one_line(exc)}") from exc
    offered = list(allowed)
    tried: list[str] = []
    notes: list[str] = []
    keys = _key_candidates(hop, what, kbd_handler, notes)
    try:
        _auth_loop(t, hop, what, kbd_handler, allowed, keys, tried)
    finally:
        keys.close()
    if not t.is_authenticated():
        extra = ("; check the user name and the key "
                 "(--identity, or User/IdentityFile in ~/.ssh/config)")
        if not t.is_active():
            extra = ("; the server closed the connection (too many keys offered? "
                     "set IdentitiesOnly yes and IdentityFile in ~/.ssh/config)")
        raise RemoteError(f"ssh {what}: authentication failed (tried: "
                          f"{', '.join(tried + notes) or 'nothing'}; server accepts: "
                          f"{', '.join(offered) or '?'}){extra}")


def _auth_loop(t: Any, hop: SshTarget, what: str, kbd_handler: KbdHandler | None,
               allowed: list[str], keys: Iterator[tuple[Any, str]], tried: list[str]) -> None:
    """Try methods until authenticated or out of methods (publickey, then prompts)."""
    import paramiko

    user = hop.user
    partial = False
    attempts: dict[str, int] = {}

    while not t.is_authenticated() and t.is_active():
        if "publickey" in allowed:
            progressed = False
            for key, label in keys:
                try:
                    remaining = t.auth_publickey(user, key)
                except paramiko.BadAuthenticationType as exc:
                    allowed = list(exc.allowed_types)
                    break
                except paramiko.AuthenticationException:
                    tried.append(f"publickey {label}")
                    if not t.is_active():
                        break
                    continue
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    tried.append(f"publickey {label} ({_one_line(exc)})")
                    if not t.is_active():
                        break
                    continue
                if t.is_authenticated():
                    return
                tried.append(f"publickey {label} (accepted, more needed)")
                allowed, partial, progressed = list(remaining), True, True
                break
            if progressed:
                continue
            if "publickey" in allowed and t.is_active():
                allowed = [a for a in allowed if a != "publickey"]
        # Up to 3 tries per prompting method, as OpenSSH's NumberOfPasswordPrompts.
        method = next((m for m in ("keyboard-interactive", "password")
                       if m in allowed and attempts.get(m, 0) < 3), None)
        if method is None:
            break
        attempts[method] = attempts.get(method, 0) + 1
        if kbd_handler is None:
            if partial:
                raise RemoteError(
                    f"ssh {what}: the server wants a second factor ({method}) after the key, "
                    "but stdin is not a terminal: run this command from a terminal")
            tried.append(f"{method} (needs a terminal; stdin is not one)")
            attempts[method] = 3
            continue
        try:
            if method == "keyboard-interactive":
                remaining = t.auth_interactive(user, kbd_handler)
            else:
                answer = list(kbd_handler("", "", [(f"{user}@{hop.hostname}'s password: ",
                                                    False)]))
                remaining = t.auth_password(user, answer[0] if answer else "", fallback=False)
        except paramiko.AuthenticationException:
            tried.append(method)
            continue
        except (paramiko.SSHException, OSError, EOFError) as exc:
            tried.append(f"{method} ({_one_line(exc)})")
            continue
        if t.is_authenticated():
            return
        tried.append(f"{method} (accepted, more needed)")
        allowed, partial = list(remaining), True
