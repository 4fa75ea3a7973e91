"""The image key and the cache folder (no apptainer needed)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest
from seeddata import COLAB_NOTEBOOKS

from hpc_dl4mic.catalogue.config import Base, resolve_target
from hpc_dl4mic.errors import InputError
from hpc_dl4mic.images.build import (
    KEY_LABEL,
    base_digest,
    prepare_base_image,
    prepare_notebook_image,
)
from hpc_dl4mic.images.cache import ImageCache, ImageRecord, tmp_dir_mode

NOTEBOOK = COLAB_NOTEBOOKS / "StarDist_2D_ZeroCostDL4Mic.ipynb"
DATA = Path(__file__).resolve().parent.parent / "data"
REQS = DATA / "requirements-small.txt"


def prepare(**kw):
    args = dict(notebook=NOTEBOOK, requirements=REQS)
    args.update(kw)
    return prepare_notebook_image(resolve_target("StarDist_2D_DL4Mic"), **args)


def test_key_is_stable_and_carried_as_a_label():
    a, b = prepare(), prepare()
    assert a.key == b.key and len(a.key) == 64
    assert f"{KEY_LABEL} {a.key}" in a.definition


def test_key_changes_with_every_input(tmp_path):
    base = prepare().key
    other_reqs = tmp_path / "r.txt"
    other_reqs.write_text("six==1.17.0\n")
    other_nb = tmp_path / NOTEBOOK.name
    other_nb.write_bytes(NOTEBOOK.read_bytes().replace(b"StarDist", b"StarDisT", 1))
    ca = tmp_path / "ca"
    ca.mkdir()
    (ca / "site.crt").write_text("-----BEGIN CERTIFICATE-----\nx\n")
    keys = {
        "requirements": prepare(requirements=other_reqs).key,
        "notebook": prepare(notebook=other_nb).key,
        "ca": prepare(ca_certs=ca).key,
        "base": prepare(base="docker://nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04").key,
        "cpu": prepare(gpu=False).key,
    }
    assert base not in keys.values()
    assert len(set(keys.values())) == len(keys)


def test_key_ignores_the_tool_version(monkeypatch):
    import hpc_dl4mic.images.render as render

    first = prepare()
    original = render.make_spec

    def other_version(*a, **kw):
        return replace(original(*a, **kw), tool_version="99.0")

    monkeypatch.setattr(render, "make_spec", other_version)
    second = prepare()
    assert "org.hpc-dl4mic.tool-version 99.0" in second.definition
    assert second.key == first.key


def test_localimage_base_digest_is_part_of_the_key(tmp_path):
    sif = tmp_path / "base.sif"
    sif.write_bytes(b"one")
    k1 = prepare(base=f"localimage:{sif}").key
    time.sleep(0.01)
    sif.write_bytes(b"two")
    os.utime(sif, ns=(time.time_ns(), time.time_ns() + 10**9))
    k2 = prepare(base=f"localimage:{sif}").key
    assert k1 != k2


def test_localimage_base_must_exist(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        base_digest(Base("localimage", str(tmp_path / "missing.sif")))


def test_base_image_key_depends_on_suite():
    assert prepare_base_image("bookworm").key != prepare_base_image("trixie").key


def _fake_image(cache: ImageCache, name: str, key: str, created: float) -> Path:
    cache.ensure()
    built = cache.new_tmp_dir("x") / "image.sif"
    built.write_bytes(b"SIF" + key.encode())
    record = ImageRecord(name=name, key=key, sha256="0" * 64, size=built.stat().st_size,
                         created=created)
    return cache.add(built, record)


def test_cache_add_lookup_and_records_newest_first(tmp_path):
    cache = ImageCache(tmp_path)
    path = _fake_image(cache, "A", "a" * 64, 1.0)
    _fake_image(cache, "A", "b" * 64, 2.0)
    assert path.name == "A-aaaaaaaaaaaaaaaa.sif"
    assert cache.lookup("A", "a" * 64) is not None
    assert cache.lookup("A", "c" * 64) is None
    assert [r.key[0] for r in cache.records()] == ["b", "a"]
    assert json.loads(path.with_suffix(".json").read_text())["key"] == "a" * 64


def test_truncated_image_is_not_a_hit(tmp_path):
    cache = ImageCache(tmp_path)
    path = _fake_image(cache, "A", "a" * 64, 1.0)
    path.write_bytes(b"S")
    assert cache.lookup("A", "a" * 64) is None


def test_prune_keeps_newest_per_notebook_and_removes_orphans_and_stale_tmp(tmp_path):
    cache = ImageCache(tmp_path)
    for i, key in enumerate("abc"):
        _fake_image(cache, "A", key * 64, float(i))
    _fake_image(cache, "B", "d" * 64, 0.0)
    orphan = tmp_path / "lost-0000.sif"
    orphan.write_bytes(b"x")
    stale = cache.new_tmp_dir("old")
    os.utime(stale, (0, 0))
    removed = cache.prune(keep=1, orphans=True)
    assert orphan in removed and stale in removed
    assert sorted(r.key[0] for r in cache.records()) == ["c", "d"]
    assert not orphan.exists() and not stale.exists()


def test_prune_dry_run_removes_nothing(tmp_path):
    cache = ImageCache(tmp_path)
    _fake_image(cache, "A", "a" * 64, 0.0)
    _fake_image(cache, "A", "b" * 64, 1.0)
    assert len(cache.prune(keep=1, dry_run=True)) == 2
    assert len(cache.records()) == 2


def test_shared_cache_files_are_group_writable_and_tmp_is_shared(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o2775)
    cache = ImageCache(shared)
    path = _fake_image(cache, "A", "a" * 64, 0.0)
    assert path.stat().st_mode & 0o777 == 0o664
    assert tmp_dir_mode(shared.stat().st_mode) == 0o3770
    assert cache.tmp_dir.stat().st_mode & 0o7777 == 0o3770
    private = ImageCache(tmp_path / "private")
    private_path = _fake_image(private, "A", "a" * 64, 0.0)
    assert private_path.stat().st_mode & 0o777 == 0o644
    assert private.tmp_dir.stat().st_mode & 0o777 == 0o700
