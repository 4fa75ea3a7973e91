"""Tree transfers over the Host primitives (FakeHost here; SSH and this machine in e2e)."""

from __future__ import annotations

import os

import pytest
from fakehost import FakeHost

from hpc_dl4mic.errors import InputError, RemoteError
from hpc_dl4mic.remote.host import absolute, expand_home


def test_put_tree_copies_changed_files_skips_links_and_unchanged_ones(tmp_path):
    src = tmp_path / "images"
    (src / "sub").mkdir(parents=True)
    (src / "a.tif").write_bytes(b"A" * 10)
    (src / "sub" / "b.tif").write_bytes(b"B")
    (src / "link").symlink_to(src / "a.tif")
    host = FakeHost()
    first = host.put_tree(src, "~/data/images")
    assert sorted(first.copied) == ["a.tif", "sub/b.tif"] and first.links == 1
    assert host.read_file("/home/u/data/images/sub/b.tif") == b"B"
    assert host.stat("/home/u/data/images/a.tif").mode == 0o600
    assert host.stat("/home/u/data/images").mode == 0o700
    (src / "sub" / "b.tif").write_bytes(b"BB")
    again = host.put_tree(src, "~/data/images")
    assert again.copied == ("sub/b.tif",) and again.skipped == 1


def test_put_tree_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        FakeHost().put_tree(tmp_path / "f", "/x")


def test_get_tree_keeps_mtimes_skips_links_and_identical_files(tmp_path):
    host = FakeHost()
    host.add_file("/r/S/out/model.h5", b"weights", mtime=1_700_000_000)
    host.add_file("/r/S/notes.txt", b"n")
    host.add_link("/r/S/data", "/data")
    report = host.get_tree("/r/S", tmp_path / "got")
    assert sorted(report.copied) == ["notes.txt", "out/model.h5"] and report.links == 1
    assert (tmp_path / "got" / "out" / "model.h5").read_bytes() == b"weights"
    assert int(os.stat(tmp_path / "got" / "out" / "model.h5").st_mtime) == 1_700_000_000
    assert not (tmp_path / "got" / "data").exists()
    assert host.get_tree("/r/S", tmp_path / "got").skipped == 2


def test_get_tree_of_a_missing_folder_names_it(tmp_path):
    with pytest.raises(RemoteError, match="/r/none: no such folder on fake"):
        FakeHost().get_tree("/r/none", tmp_path)


def test_get_tree_detects_a_corrupted_copy(tmp_path, monkeypatch):
    host = FakeHost()
    host.add_file("/r/S/x", b"good")
    monkeypatch.setattr(host, "checksums", lambda paths: {p: "0" * 64 for p in paths})
    with pytest.raises(RemoteError, match="checksum mismatch"):
        host.get_tree("/r/S", tmp_path / "got")
    assert not (tmp_path / "got" / "x").exists()


def test_home_and_relative_paths_expand_once():
    assert expand_home("~", "/h") == "/h" and expand_home("~/a", "/h") == "/h/a"
    assert expand_home("~x/a", "/h") == "~x/a"
    assert absolute("a/../b", home="/h", cwd="/w") == "/w/b"
    assert absolute("~/d", home="/h", cwd="/w") == "/h/d"
