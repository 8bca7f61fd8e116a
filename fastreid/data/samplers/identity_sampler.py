"""P x K identity samplers: each batch holds P identities with K images each.

All samplers here build *global* batches (``mini_batch_size * world_size`` images) from a seed
shared by every process; rank ``r`` yields slice ``[r * mini_batch_size, (r + 1) *
mini_batch_size)`` of each one, so the processes together see one P x K batch and no image
twice. ``mini_batch_size`` must be a multiple of K so every process gets whole identities.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
from torch.utils.data import Sampler

from fastreid.utils import comm

_BATCH_KEYS = "SOLVER.IMS_PER_BATCH and DATALOADER.NUM_INSTANCE"


def _indices_by_identity(data_source: Sequence[tuple]) -> Dict[Any, List[int]]:
    by_pid: Dict[Any, List[int]] = defaultdict(list)
    for index, item in enumerate(data_source):
        by_pid[item[1]].append(index)
    return dict(by_pid)


def _take(rng: np.random.Generator, indices: List[int], k: int) -> List[int]:
    """K of ``indices``: without replacement when there are enough, else with replacement."""
    return [int(i) for i in rng.choice(indices, size=k, replace=len(indices) < k)]


class _IdentitySampler(Sampler[int]):
    """Shared checks, seeding and rank slicing of the P x K samplers."""

    def __init__(
        self,
        data_source: Sequence[tuple],
        mini_batch_size: int,
        num_instances: int,
        seed: Optional[int] = None,
    ) -> None:
        name = type(self).__name__
        if len(data_source) == 0:
            raise ValueError(f"{name} got an empty training set; check DATASETS.NAMES.")
        if num_instances < 1:
            raise ValueError(f"DATALOADER.NUM_INSTANCE must be >= 1, got {num_instances}.")
        if mini_batch_size < num_instances:
            raise ValueError(
                f"{name}: the per-process batch ({mini_batch_size} = SOLVER.IMS_PER_BATCH // "
                f"number of processes) is smaller than DATALOADER.NUM_INSTANCE ({num_instances}), "
                f"so a batch would hold 0 identities. Raise SOLVER.IMS_PER_BATCH or lower "
                f"DATALOADER.NUM_INSTANCE."
            )
        if mini_batch_size % num_instances != 0:
            raise ValueError(
                f"{name}: the per-process batch ({mini_batch_size}) is not a multiple of "
                f"DATALOADER.NUM_INSTANCE ({num_instances}); change {_BATCH_KEYS} so it is."
            )
        self.data_source = data_source
        self.mini_batch_size = mini_batch_size
        self.num_instances = num_instances
        self._rank = comm.get_rank()
        self._world_size = comm.get_world_size()
        self.batch_size = mini_batch_size * self._world_size
        self.num_pids_per_batch = self.batch_size // num_instances
        self.seed = int(comm.shared_random_seed() if seed is None else seed)
        self.index_by_pid = _indices_by_identity(data_source)
        self.pids = list(self.index_by_pid)
        if len(self.pids) < self.num_pids_per_batch:
            raise ValueError(
                f"{name}: a batch needs {self.num_pids_per_batch} identities "
                f"({self.batch_size} images / {num_instances} per identity) but the training set "
                f"has only {len(self.pids)}. Lower SOLVER.IMS_PER_BATCH or raise "
                f"DATALOADER.NUM_INSTANCE."
            )

    def __iter__(self) -> Iterator[int]:
        start = self._rank * self.mini_batch_size
        for batch in self._global_batches(np.random.default_rng(self.seed)):
            yield from batch[start : start + self.mini_batch_size]

    def _global_batches(self, rng: np.random.Generator) -> Iterator[List[int]]:
        raise NotImplementedError


class NaiveIdentitySampler(_IdentitySampler):
    """P random identities per batch, K random images each.

    Per pass over the data, each identity's images are shuffled and cut into groups of K
    (an identity with fewer than K images is sampled with replacement up to K); batches draw P
    identities among those with groups left. Passes repeat forever.
    """

    def _global_batches(self, rng: np.random.Generator) -> Iterator[List[int]]:
        k, p = self.num_instances, self.num_pids_per_batch
        while True:
            groups: Dict[Any, List[List[int]]] = {}
            for pid, indices in self.index_by_pid.items():
                if len(indices) < k:
                    groups[pid] = [_take(rng, indices, k)]
                else:
                    shuffled = [int(i) for i in rng.permutation(indices)]
                    groups[pid] = [shuffled[j : j + k] for j in range(0, len(shuffled) - k + 1, k)]
            available = list(groups)
            while len(available) >= p:
                chosen = [available[i] for i in rng.choice(len(available), size=p, replace=False)]
                batch: List[int] = []
                for pid in chosen:
                    batch.extend(groups[pid].pop())
                    if not groups[pid]:
                        available.remove(pid)
                yield batch


class BalancedIdentitySampler(_IdentitySampler):
    """P identities per batch, K images each, spread over as many cameras as possible.

    Identities are visited in a fresh random order every pass. An identity's K images are taken
    round-robin over its cameras (in random order), so a batch pairs each image with views
    from other cameras whenever the identity has them.
    """

    def __init__(
        self,
        data_source: Sequence[tuple],
        mini_batch_size: int,
        num_instances: int,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__(data_source, mini_batch_size, num_instances, seed)
        self.index_by_pid_cam: Dict[Any, Dict[Any, List[int]]] = {}
        for pid, indices in self.index_by_pid.items():
            by_cam: Dict[Any, List[int]] = defaultdict(list)
            for i in indices:
                by_cam[data_source[i][2]].append(i)
            self.index_by_pid_cam[pid] = dict(by_cam)

    def _pick(self, rng: np.random.Generator, pid: Any) -> List[int]:
        cams = list(self.index_by_pid_cam[pid].values())
        queues = [[int(i) for i in rng.permutation(cams[c])] for c in rng.permutation(len(cams))]
        picked: List[int] = []
        while len(picked) < self.num_instances and any(queues):
            for queue in queues:
                if queue and len(picked) < self.num_instances:
                    picked.append(queue.pop())
        if len(picked) < self.num_instances:  # too few images: repeat, still spread over cameras
            picked += _take(rng, picked, self.num_instances - len(picked))
        return picked

    def _global_batches(self, rng: np.random.Generator) -> Iterator[List[int]]:
        p = self.num_pids_per_batch
        while True:
            order = [self.pids[i] for i in rng.permutation(len(self.pids))]
            for start in range(0, len(order) - p + 1, p):
                batch: List[int] = []
                for pid in order[start : start + p]:
                    batch.extend(self._pick(rng, pid))
                yield batch


class SetReWeightSampler(_IdentitySampler):
    """P x K batches whose identities come from the merged training sets in fixed proportions.

    ``set_weight[i]`` is the weight of the i-th training set (order of ``DATASETS.NAMES``); a
    batch holds about ``P * w_i / sum(w)`` identities of set i. The set of an item is the dataset
    prefix of its camera id (``"market1501_3"`` -> ``"market1501"``), in order of first appearance.
    """

    def __init__(
        self,
        data_source: Sequence[tuple],
        mini_batch_size: int,
        num_instances: int,
        set_weight: Sequence[float],
        seed: Optional[int] = None,
    ) -> None:
        super().__init__(data_source, mini_batch_size, num_instances, seed)
        pids_by_set: Dict[str, List[Any]] = {}
        for pid, indices in self.index_by_pid.items():
            set_name = str(data_source[indices[0]][2]).rsplit("_", 1)[0]
            pids_by_set.setdefault(set_name, []).append(pid)
        self.set_names = list(pids_by_set)
        if (
            len(set_weight) != len(self.set_names)
            or any(w < 0 for w in set_weight)
            or sum(set_weight) <= 0
        ):
            raise ValueError(
                f"DATALOADER.SET_WEIGHT must hold one non-negative weight per training set "
                f"({len(self.set_names)}: {', '.join(self.set_names)}, order of DATASETS.NAMES), "
                f"not all zero; got {list(set_weight)}."
            )
        self.pids_by_set = [pids_by_set[name] for name in self.set_names]
        weights = np.asarray(set_weight, dtype=float) / float(sum(set_weight))
        exact = weights * self.num_pids_per_batch
        counts = np.floor(exact).astype(int)
        for i in np.argsort(-(exact - counts))[: self.num_pids_per_batch - counts.sum()]:
            counts[i] += 1  # largest remainders get the identities left over
        self.pids_per_set = [int(c) for c in counts]
        for name, pids, count in zip(self.set_names, self.pids_by_set, self.pids_per_set):
            if count > len(pids):
                raise ValueError(
                    f"SetReWeightSampler: set '{name}' should give {count} identities per batch "
                    f"but has only {len(pids)}. Lower its DATALOADER.SET_WEIGHT or "
                    f"SOLVER.IMS_PER_BATCH."
                )

    def _global_batches(self, rng: np.random.Generator) -> Iterator[List[int]]:
        while True:
            batch: List[int] = []
            for pids, count in zip(self.pids_by_set, self.pids_per_set):
                for i in rng.choice(len(pids), size=count, replace=False):
                    batch.extend(_take(rng, self.index_by_pid[pids[i]], self.num_instances))
            yield batch
