"""The host a profile names: its cluster over SSH, or this machine for ``--local`` (whose
pseudo-profile is here too), and ``profile test``'s probe of it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..fsutil import default_image_cache
from .localhost import LOCAL_PROFILE, LocalHost, local_work_dir
from .profiles import Check, Profile, check_profile, get_profile

if TYPE_CHECKING:
    from .host import Host


def local_profile() -> Profile:
    """The pseudo-profile of ``--local`` sessions: work dir in the XDG state dir, images in
    this machine's cache, built here."""
    return Profile(name=LOCAL_PROFILE, host="localhost", work_dir=str(local_work_dir()),
                   cache_dir=str(default_image_cache()), build="here")


def open_host(profile: Profile, *, accept_new_host_key: bool = False) -> Host:
    """Connect to the profile's host (a context manager that closes it): an
    :class:`~.connection.SshHost` for a cluster, a :class:`~.localhost.LocalHost` for the
    ``--local`` pseudo-profile."""
    if profile.name == LOCAL_PROFILE:
        return LocalHost()
    from .connection import SshHost

    return SshHost.open(profile.ssh_target(), accept_new_host_key=accept_new_host_key)


def probe_profile(name: str, profile_file: Path | None = None, *,
                  accept_new_host_key: bool = False) -> list[Check]:
    """``profile test``: connect to the named profile's cluster and :func:`check_profile`."""
    profile = get_profile(name, profile_file)
    with open_host(profile, accept_new_host_key=accept_new_host_key) as host:
        return check_profile(profile, host)
