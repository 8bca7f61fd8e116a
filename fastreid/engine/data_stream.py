"""Feeding the trainer one epoch at a time from an infinite training loader.

The training loader's sampler is infinite (FastReID style). For ``--resume`` to replay the
same data as an uninterrupted run, the trainer draws each epoch's batches through an
:class:`EpochDataStream`: the index batches come from one persistent pass over the loader's
batch sampler (skipped ahead cheaply on resume — indices only, no image is decoded) and the
worker processes of each epoch are seeded from ``(seed, epoch)``, so augmentations do not
depend on how many epochs this process has run. The workers are therefore started anew every
epoch (never persistent): their seeds are part of what a resumed run replays.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Dict, Iterator, List, Optional

import torch
from torch.utils.data import DataLoader

__all__ = ["EpochDataStream"]


class EpochDataStream:
    """Epoch iterators over an infinite loader that a resumed run can reproduce.

    Args:
        loader: the training loader (usually a ``DataLoader`` with an infinite batch sampler).
            Other iterables are consumed as they are (resume then replays the sampler only
            as far as the loader allows, and a warning says so).
        seed: base seed of the per-epoch worker seeds.
    """

    def __init__(self, loader: Any, seed: int = 0) -> None:
        self.loader = loader
        self.seed = int(seed)
        self._rebuildable = isinstance(loader, DataLoader) and loader.batch_sampler is not None
        self._batch_indices: Optional[Iterator[List[int]]] = None
        self._plain_iter: Optional[Iterator[Any]] = None
        self._logger = logging.getLogger(__name__)

    @property
    def sampler_seed(self) -> Optional[int]:
        """The seed of the training sampler's index stream (``None`` when the loader has no
        seeded sampler). With ``SEED < 0`` it is drawn at random, so checkpoints keep it and a
        resumed run sets it back before its first batch."""
        return getattr(self._sampler(), "seed", None)

    @sampler_seed.setter
    def sampler_seed(self, value: int) -> None:
        sampler = self._sampler()
        if sampler is not None and hasattr(sampler, "seed"):
            if self._batch_indices is not None:
                raise RuntimeError("The sampler seed must be set before the first epoch starts.")
            sampler.seed = int(value)

    def state_dict(self) -> Dict[str, Any]:
        """``data_seed`` (the per-epoch worker seeds' base) and ``sampler_seed``."""
        return {"data_seed": self.seed, "sampler_seed": self.sampler_seed}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Take the seeds back (before the first epoch starts); absent keys keep their value."""
        if state.get("data_seed") is not None:
            self.seed = int(state["data_seed"])
        if state.get("sampler_seed") is not None:
            self.sampler_seed = int(state["sampler_seed"])

    def _sampler(self) -> Any:
        batch_sampler = getattr(self.loader, "batch_sampler", None)
        return getattr(batch_sampler, "sampler", None)

    def epoch_iterator(self, epoch: int, num_batches: int, skip_batches: int = 0) -> Iterator[Any]:
        """An iterator over the ``num_batches`` batches of ``epoch``.

        ``skip_batches`` (used once, on resume) is how many batches earlier epochs consumed.
        """
        if not self._rebuildable:
            if self._plain_iter is None:
                if skip_batches:
                    self._logger.warning(
                        f"The training loader ({type(self.loader).__name__}) is not a DataLoader "
                        "with a batch sampler; the resumed run restarts its data stream."
                    )
                self._plain_iter = iter(self.loader)
            return itertools.islice(self._plain_iter, num_batches)

        if self._batch_indices is None:
            self._batch_indices = iter(self.loader.batch_sampler)
            for _ in range(skip_batches):
                next(self._batch_indices)
        batches = list(itertools.islice(self._batch_indices, num_batches))
        generator = torch.Generator()
        generator.manual_seed((self.seed * 1_000_003 + epoch) % (2**63))
        return iter(self._epoch_loader(batches, generator))

    def _epoch_loader(self, batches: List[List[int]], generator: torch.Generator) -> DataLoader:
        loader = self.loader
        kwargs = dict(
            batch_sampler=batches,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            timeout=loader.timeout,
            worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context,
            generator=generator,
        )
        if loader.num_workers > 0:
            kwargs["prefetch_factor"] = loader.prefetch_factor
        if getattr(loader, "pin_memory_device", ""):
            kwargs["pin_memory_device"] = loader.pin_memory_device
        return DataLoader(loader.dataset, **kwargs)
