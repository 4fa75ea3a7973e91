"""Former home of the sessions code, now in :mod:`.records`, :mod:`.options`,
:mod:`.launch`, :mod:`.attach` and :mod:`.results`: the names the CLI imports, re-exported
for code not yet moved to those modules."""

from __future__ import annotations

from .attach import run_attached
from .launch import submit_and_attach
from .records import (
    ACTIVE_STATES,
    find_session,
    load_sessions,
    open_connection,
    seconds_left,
    session_profile,
)
from .results import cancel, fetch, print_log, refresh_all

__all__ = ["ACTIVE_STATES", "cancel", "fetch", "find_session", "load_sessions",
           "open_connection", "print_log", "refresh_all", "run_attached", "seconds_left",
           "session_profile", "submit_and_attach"]
