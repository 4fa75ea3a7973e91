"""Where to connect: ``[user@]host[:port]`` destinations and ~/.ssh/config resolution
(HostName, User, Port, IdentityFile, ProxyJump chains, ...).

paramiko is imported inside functions only (``hpc-dl4mic --help`` stays fast).
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import InputError
from .messages import _one_line

DEFAULT_PORT = 22
MAX_JUMP_DEPTH = 8


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
    connect_timeout: float | None = None  # ConnectTimeout (seconds); None: the default

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


def ssh_target(host: str, *, user: str | None = None, port: int | None = None,
               identity: str | Path | Sequence[str | Path] | None = None,
               proxy_jump: str | Sequence[str | SshTarget] | None = None,
               ssh_config: Path | None = None) -> SshTarget:
    """Resolve ``host`` (an ~/.ssh/config alias or ``[user@]host[:port]``) to an SshTarget.

    HostName, User, Port, IdentityFile, IdentitiesOnly, ProxyJump (a comma-separated
    chain, each hop resolved through the same config), ProxyCommand, HostKeyAlias,
    UserKnownHostsFile and ConnectTimeout are read from the config; explicit arguments win over it.
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
    connect_timeout: float | None = None
    if opts.get("connecttimeout"):
        try:
            connect_timeout = float(opts["connecttimeout"])
        except ValueError:
            raise InputError(f"bad ConnectTimeout in ~/.ssh/config for {alias!r}: give a "
                             "number of seconds") from None
        if connect_timeout <= 0:
            connect_timeout = None  # OpenSSH: 0 or less means the system's own timeout
    proxy_command = opts.get("proxycommand")
    if proxy_command and proxy_command.strip().lower() == "none":
        proxy_command = None
    return SshTarget(
        alias=alias, hostname=hostname, port=port, user=user,
        identity_files=tuple(files), proxy_jump=tuple(hops), known_hosts=known,
        host_key_alias=opts.get("hostkeyalias"),
        identities_only=str(opts.get("identitiesonly", "no")).lower() == "yes",
        proxy_command=None if hops else proxy_command, connect_timeout=connect_timeout,
    )


def chain(target: SshTarget) -> list[SshTarget]:
    """The hops to connect in order, ending with ``target`` itself."""
    hops: list[SshTarget] = []
    for hop in target.proxy_jump:
        hops.extend(chain(ssh_target(hop) if isinstance(hop, str) else hop))
    hops.append(replace(target, proxy_jump=()))
    return hops
