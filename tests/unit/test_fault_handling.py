"""Faults handled without tracebacks: a download's read-ahead thread dying with the
connection, corrupt session records, connect timeouts, concurrent builds of one image."""

from __future__ import annotations

import threading

from hpc_dl4mic.remote import sftpops


def _thread_raising_in(filename: str) -> list[str]:
    """Run a thread whose failing frame is ``_prefetch_thread`` of ``filename``; what the
    previous excepthook saw."""
    seen: list[str] = []
    namespace: dict = {}
    exec(compile("def _prefetch_thread():\n    raise EOFError('connection lost')\n",
                 filename, "exec"), namespace)
    previous = threading.excepthook
    threading.excepthook = lambda args: seen.append(str(args.exc_value))
    sftpops._hook_installed = False
    try:
        sftpops.quiet_prefetch_threads()
        thread = threading.Thread(target=namespace["_prefetch_thread"])
        thread.start()
        thread.join()
    finally:
        threading.excepthook = previous
        sftpops._hook_installed = False
    return seen


def test_paramiko_prefetch_thread_dying_with_the_connection_prints_nothing():
    assert _thread_raising_in("/venv/site-packages/paramiko/sftp_file.py") == []


def test_other_threads_failures_still_reach_the_previous_hook():
    assert _thread_raising_in("/somewhere/else/mine.py") == ["connection lost"]
