"""Progress lines for waits longer than a second (always on stderr, never on stdout)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


class Progress:
    """Call with each line of a long step's output.

    Verbose: every line is shown. Otherwise: the step's first line, then at most one
    ``... 35 s: <latest line>`` heartbeat every ``interval`` seconds.
    """

    def __init__(self, verbose: bool = False, interval: float = 10.0,
                 write: Callable[[str], None] | None = None) -> None:
        self.verbose = verbose
        self.interval = interval
        self.write = write or (lambda text: print(text, file=sys.stderr, flush=True))
        self.started = time.monotonic()
        self.last_shown = self.started
        self.first = True

    def __call__(self, line: str) -> None:
        now = time.monotonic()
        if self.verbose:
            self.write(line)
        elif self.first:
            self.write(line)
        elif now - self.last_shown >= self.interval and line.strip():
            self.write(f"  ... {now - self.started:4.0f} s: {line.strip()[:100]}")
        else:
            return
        self.first = False
        self.last_shown = now
