"""Splitting tasks into job arrays within MaxArraySize."""

from __future__ import annotations

import pytest

from hpc_dl4mic.batch.arrays import compress, split
from hpc_dl4mic.jobs.arrays import parse_max_array_size


def test_compress():
    assert compress([3, 0, 1, 2, 7, 9, 10, 10]) == "0-3,7,9-10"
    assert compress([5]) == "5" and compress([]) == ""


def test_thousand_tasks_fit_one_array():
    chunks = split(range(1000))
    assert len(chunks) == 1 and chunks[0].spec(8) == "0-999%8"


def test_more_than_max_array_size_is_split_with_offsets():
    chunks = split(range(2500), 1001)
    assert [(c.offset, c.spec()) for c in chunks] == [(0, "0-1000"), (1001, "0-1000"),
                                                     (2002, "0-497")]
    assert sum(len(c.indices) for c in chunks) == 2500


def test_rerun_of_scattered_indices():
    chunks = split([1500, 3, 17, 999, 1000], 1000)
    assert [(c.offset, c.spec(2)) for c in chunks] == [(0, "3,17,999%2"), (1000, "0,500%2")]


def test_bad_sizes():
    with pytest.raises(ValueError):
        split([1], 0)
    with pytest.raises(ValueError):
        split([-1])


def test_parse_max_array_size():
    assert parse_max_array_size("Foo = 1\nMaxArraySize            = 40001\n") == 40001
    assert parse_max_array_size("") == 1001
