"""One-line texts for SSH failures (shared by the connection and the tunnels)."""

from __future__ import annotations


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


_OPEN_FAILURES = {
    1: "administratively prohibited (the server forbids forwarding: AllowTcpForwarding, "
       "PermitOpen)",
    2: "connect failed (nothing listening there, or unreachable from the server)",
    3: "unknown channel type",
    4: "resource shortage on the server",
}


def channel_open_error(exc: BaseException) -> str:
    """Readable reason for a failed channel open (paramiko's ChannelException or other)."""
    code = getattr(exc, "code", None)
    if code in _OPEN_FAILURES:
        return _OPEN_FAILURES[code]
    return _one_line(getattr(exc, "text", None) or exc) or type(exc).__name__
