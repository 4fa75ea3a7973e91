"""A build that prints nothing for a while (mksquashfs of a large image) gets heartbeat
lines with the size of the image written so far."""

from __future__ import annotations

import os
import time

from hpc_dl4mic.images.builders import Heartbeat
from hpc_dl4mic.remote.localhost import LocalHost


def test_the_heartbeat_reports_the_squashfs_size_while_the_build_is_silent(tmp_path,
                                                                         monkeypatch):
    marker = tmp_path / "build" / "x.def"
    marker.parent.mkdir()
    marker.write_text("Bootstrap: localimage\n")
    os.utime(marker, (time.time() - 60, time.time() - 60))
    bundle = tmp_path / "tmp" / "bundle-temp-1"
    bundle.mkdir(parents=True)
    (bundle / "squashfs-2").write_bytes(b"\0" * (3 * 2**20))
    monkeypatch.setenv("APPTAINER_TMPDIR", str(tmp_path / "tmp"))
    said: list[str] = []
    with Heartbeat(LocalHost(), str(marker), said.append, interval=0.05) as beat:
        beat.line("INFO:    Creating SIF file...")
        deadline = time.monotonic() + 10
        while not any("MiB" in s for s in said) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert said[0] == "INFO:    Creating SIF file..."
    assert "creating the image: 3 MiB written so far" in said


def test_without_a_squashfs_file_it_says_the_build_still_runs(tmp_path, monkeypatch):
    marker = tmp_path / "x.def"
    marker.write_text("x")
    monkeypatch.setenv("APPTAINER_TMPDIR", str(tmp_path / "empty"))
    said: list[str] = []
    with Heartbeat(LocalHost(), str(marker), said.append, interval=0.05):
        deadline = time.monotonic() + 10
        while not said and time.monotonic() < deadline:
            time.sleep(0.05)
    assert said and said[0] == "still building (no output for a while)"
