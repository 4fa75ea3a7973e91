"""known_hosts: parsing (plain, hashed, wildcard, negated, @revoked), matching, appending
new keys, fingerprints, and the host-key check of a connection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, RemoteError


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


def default_known_hosts() -> Path:
    return Path("~/.ssh/known_hosts").expanduser()


def preferred_key_types(current: Sequence[str],
                        known: Sequence[KnownHostEntry]) -> list[str]:
    """Put the host key algorithms we already know for this host first (as OpenSSH does)."""
    wanted: list[str] = []
    for e in known:
        names = ["rsa-sha2-512", "rsa-sha2-256"] if e.keytype == "ssh-rsa" else [e.keytype]
        wanted += [n for n in names if n in current and n not in wanted]
    return wanted + [t for t in current if t not in wanted]


def verify_host_key(what: str, name: str, key: Any, entries: Sequence[KnownHostEntry],
                    accept_new: bool, write_to: Path) -> None:
    """Accept a known key; refuse a revoked, changed or (unless ``accept_new``, then it is
    saved to ``write_to``) unknown one, with a one-line RemoteError naming the fingerprint."""
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
