"""Opening the chain of paramiko Transports to a target (socket, jump host channel or
ProxyCommand; handshake, host key check, authentication)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from ..errors import RemoteError
from .auth import KbdHandler, authenticate
from .known_hosts import default_known_hosts, preferred_key_types, read_known_hosts, verify_host_key
from .messages import _one_line, channel_open_error
from .target import SshTarget, chain

KEEPALIVE_SECONDS = 30
# Measured faster than the ctr ciphers with paramiko (local-cluster.md); cbc/3des are
# dropped as OpenSSH's client does.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
           "aes128-ctr", "aes192-ctr", "aes256-ctr")


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
        default = default_known_hosts()
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
        sec.key_types = preferred_key_types(
            sec.key_types, [e for e in entries if e.marker is None and e.matches(name)])
        silent = RemoteError(f"ssh {what}: no SSH server answered within {timeout:g} s (the "
                             "connection was accepted, but no SSH handshake followed): check "
                             "the host and port, and the network (proxy, VPN?)")
        started = time.monotonic()
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if "protocol banner" in str(exc):
                if time.monotonic() - started < timeout * 0.9:  # closed, not silent
                    raise RemoteError(f"ssh {what}: the connection was closed before any SSH "
                                      "banner: not an SSH server, or a proxy or firewall "
                                      "refused it; check the host and port") from exc
                raise silent from exc
            raise RemoteError(f"ssh {what}: SSH handshake failed: "
                              f"{_one_line(exc) or type(exc).__name__}") from exc
        try:  # start_client returns quietly when its timeout passes mid-handshake
            key = transport.get_remote_server_key()
        except paramiko.SSHException as exc:
            raise silent from exc
        verify_host_key(what, name, key, entries, accept_new_host_key, write_to)
        authenticate(transport, hop, what, kbd_handler)
        transport.set_keepalive(KEEPALIVE_SECONDS)
        return transport
    except BaseException:
        transport.close()
        raise


def open_chain(target: SshTarget, *, accept_new_host_key: bool, known_hosts: Path | None,
               kbd_handler: KbdHandler | None, timeout: float) -> list[Any]:
    """Transports to every hop of ``target`` in order (the last one reaches the target)."""
    transports: list[Any] = []
    hops = chain(target)
    try:
        for i, hop in enumerate(hops):
            transports.append(_open_transport(
                hop, via=transports[-1] if transports else None,
                accept_new_host_key=accept_new_host_key, known_hosts=known_hosts,
                kbd_handler=kbd_handler, timeout=timeout, is_jump=i < len(hops) - 1))
    except BaseException:
        for t in reversed(transports):
            t.close()
        raise
    return transports
