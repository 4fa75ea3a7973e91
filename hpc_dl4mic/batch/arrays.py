"""Job arrays within the cluster's MaxArraySize (pure functions).

SLURM refuses array indices >= MaxArraySize, so task ``i`` runs as array index
``i - offset`` of the array whose ``offset`` is ``(i // size) * size``; each array is one
``sbatch`` call, and the job script adds its offset to ``$SLURM_ARRAY_TASK_ID``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..jobs.arrays import DEFAULT_MAX_ARRAY_SIZE


@dataclass(frozen=True)
class ArrayChunk:
    """One job array: task indices, the offset added to the array index, ``--array`` spec."""

    offset: int
    indices: tuple[int, ...]

    def spec(self, max_parallel: int | None = None) -> str:
        text = compress([i - self.offset for i in self.indices])
        return f"{text}%{max_parallel}" if max_parallel else text


def compress(values: Iterable[int]) -> str:
    """``0-3,7,9-10`` for 0,1,2,3,7,9,10 (sorted, duplicates dropped)."""
    out: list[str] = []
    items = sorted(set(values))
    start = prev = None
    for v in [*items, None]:
        if v is not None and prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = v
    return ",".join(out)


def split(indices: Sequence[int], max_array_size: int = DEFAULT_MAX_ARRAY_SIZE
          ) -> list[ArrayChunk]:
    """The arrays that run ``indices``: one per block of ``max_array_size`` task indices."""
    if max_array_size < 1:
        raise ValueError(f"max_array_size {max_array_size}: must be at least 1")
    blocks: dict[int, list[int]] = {}
    for i in sorted(set(indices)):
        if i < 0:
            raise ValueError(f"task index {i}: must not be negative")
        blocks.setdefault(i // max_array_size * max_array_size, []).append(i)
    return [ArrayChunk(offset, tuple(items)) for offset, items in sorted(blocks.items())]
