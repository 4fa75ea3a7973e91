"""Small checks for scripts/demo.sh (standard library only).

    python scripts/demo_check.py jupyter URL        GET the Jupyter API through the tunnel
    python scripts/demo_check.py batch-ended FILE   exit 0 when no task of `batch status
                                                    --json` output is pending or running
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse


def get(url: str, path: str, token: str) -> tuple[int, object]:
    """Status and JSON body of a GET of ``path`` on the server of ``url``."""
    parsed = urlparse(url)
    request = urllib.request.Request(f"{parsed.scheme}://{parsed.netloc}{path}",
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def check_jupyter(url: str) -> int:
    """Print what the Jupyter behind ``url`` serves; 0 when /api/status answers 200."""
    token = parse_qs(urlparse(url).query).get("token", [""])[0]
    try:
        code, status = get(url, "/api/status", token)
        _, contents = get(url, "/api/contents", token)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        print(f"Jupyter API through the tunnel: {exc}", file=sys.stderr)
        return 1
    names = [item["name"] for item in contents.get("content", [])]  # type: ignore[union-attr]
    print(f"GET /api/status -> {code} (started {status.get('started', '?')}); "  # type: ignore[union-attr]
          f"files in the session folder: {', '.join(sorted(names)) or '(none)'}")
    return 0 if code == 200 else 1


def batch_ended(path: Path) -> int:
    """0 when every task has ended; prints the counts of states either way."""
    tasks = json.loads(path.read_text())
    states: dict[str, int] = {}
    for task in tasks:
        states[task["state"]] = states.get(task["state"], 0) + 1
    print(", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no tasks")
    return 1 if not tasks or states.keys() & {"pending", "running"} else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "jupyter":
        return check_jupyter(argv[1])
    if len(argv) == 2 and argv[0] == "batch-ended":
        return batch_ended(Path(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
