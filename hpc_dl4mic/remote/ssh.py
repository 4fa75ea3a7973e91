"""Former home of the SSH layer, kept while callers move to its modules: ``target``
(destinations, ~/.ssh/config), ``known_hosts``, ``auth``, ``transport``, ``commands`` and
``connection`` (:class:`SshHost`, formerly ``Connection``)."""

from __future__ import annotations

from .auth import DEFAULT_IDENTITIES, KbdHandler, terminal_prompt
from .commands import remote_command
from .connection import Connection, SshHost
from .known_hosts import (
    KnownHostEntry,
    append_known_host,
    check_host_key,
    fingerprint,
    read_known_hosts,
)
from .messages import _one_line, channel_open_error
from .target import DEFAULT_PORT, MAX_JUMP_DEPTH, SshTarget, parse_destination, ssh_target
from .transport import CIPHERS, KEEPALIVE_SECONDS

__all__ = [
    "CIPHERS", "DEFAULT_IDENTITIES", "DEFAULT_PORT", "KEEPALIVE_SECONDS", "MAX_JUMP_DEPTH",
    "Connection", "KbdHandler", "KnownHostEntry", "SshHost", "SshTarget", "_one_line",
    "append_known_host", "channel_open_error", "check_host_key", "fingerprint",
    "parse_destination", "read_known_hosts", "remote_command", "ssh_target",
    "terminal_prompt",
]
