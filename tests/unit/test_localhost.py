"""LocalHost: this machine behind the Host interface (real files in a temp folder)."""

from __future__ import annotations

import os

import pytest

from hpc_dl4mic.errors import RemoteError
from hpc_dl4mic.jobs.local import LocalScheduler
from hpc_dl4mic.remote.localhost import LocalHost


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return LocalHost()


def test_stat_tells_files_folders_links_and_missing_paths(host, tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to(tmp_path / "f")
    assert host.stat("f").kind == "file" and host.stat("f").size == 3
    assert host.stat(str(tmp_path / "d")).kind == "dir"
    assert host.stat("l").kind == "link"
    assert host.stat("nope") is None
    assert [i.name for i in host.listdir(".")] == ["d", "f", "l"]
    with pytest.raises(RemoteError, match="cannot list .*nope"):
        host.listdir("nope")


def test_makedirs_sets_the_mode_of_every_folder_it_creates(host, tmp_path):
    host.makedirs("a/b/c", mode=0o700)
    for sub in ("a", "a/b", "a/b/c"):
        assert (tmp_path / sub).stat().st_mode & 0o777 == 0o700
    host.makedirs("a/b/c", mode=0o755)  # existing folders are left alone
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o700


def test_write_is_atomic_with_the_mode_and_errors_name_the_path(host, tmp_path):
    host.write_file("x.txt", "hi", mode=0o600)
    assert (tmp_path / "x.txt").read_text() == "hi"
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o600
    with pytest.raises(RemoteError, match="cannot write .*missing/x"):
        host.write_file("missing/x", "no folder")
    host.remove("x.txt")
    host.remove("x.txt")  # missing is fine
    assert not (tmp_path / "x.txt").exists()


def test_put_and_get_keep_mtime_and_checksums_match(host, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"\0" * 1000)
    os.utime(src, (1_600_000_000, 1_600_000_000))
    host.put(src, "copy.bin", mode=0o640)
    assert (tmp_path / "copy.bin").stat().st_mode & 0o777 == 0o640
    assert int((tmp_path / "copy.bin").stat().st_mtime) == 1_600_000_000
    host.get("copy.bin", tmp_path / "back" / "b.bin")
    sums = host.checksums(["src.bin", "back/b.bin"])
    assert sums["src.bin"] == sums["back/b.bin"]


def test_trees_round_trip_without_links(host, tmp_path):
    (tmp_path / "in" / "s").mkdir(parents=True)
    (tmp_path / "in" / "s" / "a").write_text("a")
    (tmp_path / "in" / "data").symlink_to("/")
    up = host.put_tree(tmp_path / "in", "remote-copy")
    assert up.copied == ("s/a",) and up.links == 1
    down = host.get_tree("remote-copy", tmp_path / "out")
    assert down.copied == ("s/a",) and (tmp_path / "out" / "s" / "a").read_text() == "a"


def test_scheduler_runs_jobs_as_detached_processes(host):
    assert isinstance(host.scheduler(), LocalScheduler)


def test_forward_is_direct_and_home_expands(host):
    with host.forward("127.0.0.1", 8888) as fwd:
        assert fwd.url("/lab") == "http://127.0.0.1:8888/lab"
    assert host.stat("~").kind == "dir"
