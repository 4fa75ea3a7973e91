"""Logging in: terminal prompts, key loading (agent, identity files, passphrases) and the
authentication loop (publickey, keyboard-interactive / password, second factors)."""

from __future__ import annotations

import base64
import getpass
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError, RemoteError
from .known_hosts import fingerprint
from .messages import _one_line
from .target import SshTarget

DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")

KbdHandler = Callable[[str, str, Sequence[tuple[str, bool]]], Sequence[str]]
"""``handler(title, instructions, [(prompt, echo), ...]) -> answers`` (paramiko's shape)."""


def terminal_prompt(title: str, instructions: str,
                    prompts: Sequence[tuple[str, bool]]) -> list[str]:
    """Ask keyboard-interactive / password / passphrase questions on the terminal."""
    for text in (title, instructions):
        if text:
            print(text, file=sys.stderr)
    return [input(p) if echo else getpass.getpass(p) for p, echo in prompts]


def stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


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
            key = load_key(path, what, kbd_handler, notes)
            if key is not None:
                yield key, str(path)
    finally:
        if agent is not None:
            agent.close()


def load_key(path: Path, what: str, kbd_handler: KbdHandler | None,
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


def authenticate(t: Any, hop: SshTarget, what: str,
                 kbd_handler: KbdHandler | None) -> None:
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
