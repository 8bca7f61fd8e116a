"""Index samplers for plain shuffled training and for inference, distributed-aware."""

from __future__ import annotations

import itertools
from typing import Iterator, Optional

import torch
from torch.utils.data import Sampler

from fastreid.utils import comm


class TrainingSampler(Sampler[int]):
    """An infinite stream of shuffled indices of ``range(size)``.

    All processes draw the same permutation from a shared seed; rank ``r`` of ``w`` keeps the
    indices at positions ``r, r + w, r + 2w, ...`` so the processes see disjoint samples.
    """

    def __init__(self, size: int, shuffle: bool = True, seed: Optional[int] = None) -> None:
        if size <= 0:
            raise ValueError(
                f"TrainingSampler got an empty dataset (size={size}); check DATASETS.NAMES."
            )
        self._size = size
        self._shuffle = shuffle
        self.seed = int(comm.shared_random_seed() if seed is None else seed)
        self._rank = comm.get_rank()
        self._world_size = comm.get_world_size()

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            if self._shuffle:
                yield from torch.randperm(self._size, generator=generator).tolist()
            else:
                yield from range(self._size)


class InferenceSampler(Sampler[int]):
    """Every index of ``range(size)`` exactly once over all processes, in contiguous shards.

    Rank ``r`` gets the ``r``-th contiguous block, so gathering the ranks' outputs in rank order
    restores the dataset order.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"InferenceSampler size must be >= 0, got {size}.")
        self._size = size
        rank, world_size = comm.get_rank(), comm.get_world_size()
        shard = (size + world_size - 1) // world_size
        begin = min(shard * rank, size)
        self._local_indices = range(begin, min(begin + shard, size))

    def __iter__(self) -> Iterator[int]:
        yield from self._local_indices

    def __len__(self) -> int:
        return len(self._local_indices)
