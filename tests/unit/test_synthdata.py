"""The synthetic data writer used to run the real notebooks (pure Python TIFFs)."""

from __future__ import annotations

import struct

from synthdata import Plane, blobs, read_tiff_size, write_scenes, write_tiff


def test_a_stack_is_one_tiff_with_a_page_per_plane(tmp_path):
    scene = blobs(seed=5, size=32, depth=4, count=3)
    path = write_tiff(tmp_path / "stack.tif", scene["image"])
    assert read_tiff_size(path) == (4, 32, 32)
    assert b"ImageJ=1.11a\nimages=4\nslices=4" in path.read_bytes()


def test_labels_are_uint16_and_each_disc_has_its_own_value(tmp_path):
    scene = blobs(seed=1, size=64, count=5)
    labels = scene["labels"][0]
    assert labels.dtype == "uint16"
    assert set(labels.pixels) - {0} <= set(range(1, 6)) and len(set(labels.pixels)) > 2
    mask = scene["mask"][0]
    assert set(mask.pixels) == {0, 255}
    data = write_tiff(tmp_path / "l.tif", [labels]).read_bytes()
    assert data[:4] == b"II*\0"
    ifd = struct.unpack_from("<I", data, 4)[0]
    tags = {struct.unpack_from("<H", data, ifd + 2 + 12 * i)[0]:
            struct.unpack_from("<H", data, ifd + 10 + 12 * i)[0]
            for i in range(struct.unpack_from("<H", data, ifd)[0])}
    assert tags[258] == 16 and tags[259] == 1 and tags[277] == 1


def test_scenes_are_paired_by_name_and_the_same_seed_gives_the_same_bytes(tmp_path):
    names = write_scenes({"image": tmp_path / "a" / "img", "labels": tmp_path / "a" / "lab"},
                         2, seed=3, size=32)
    write_scenes({"image": tmp_path / "b"}, 2, seed=3, size=32)
    assert names == ["img_00.tif", "img_01.tif"]
    assert sorted(p.name for p in (tmp_path / "a" / "lab").iterdir()) == names
    assert (tmp_path / "a" / "img" / names[1]).read_bytes() == \
        (tmp_path / "b" / names[1]).read_bytes()


def test_planes_of_different_sizes_are_refused(tmp_path):
    import pytest
    with pytest.raises(ValueError, match="differ"):
        write_tiff(tmp_path / "x.tif", [Plane.zeros(4, 4), Plane.zeros(5, 4)])
    assert not (tmp_path / "x.tif").exists()
