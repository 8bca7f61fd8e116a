"""Precise BatchNorm: re-estimate BN running statistics with the final weights.

Running statistics collected with momentum during training mix many weight states; averaging
exact batch statistics over a few hundred batches with the final weights gives better test
features (Wu & Johnson, "Rethinking BatchNorm", 2021).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from typing import Any, Iterable, Iterator, List

import torch
from torch import nn

__all__ = ["bn_statistics_pass", "get_bn_modules", "in_bn_statistics_pass", "update_bn_stats"]

_pass_depth = 0


@contextlib.contextmanager
def bn_statistics_pass() -> Iterator[None]:
    """Marks forwards that run only to collect BN statistics (precise BN).

    A meta-arch whose training forward has side effects (MoCo's queue and momentum encoder)
    checks :func:`in_bn_statistics_pass` and then runs only the layers whose statistics are
    wanted, with no loss and no state change.
    """
    global _pass_depth
    _pass_depth += 1
    try:
        yield
    finally:
        _pass_depth -= 1


def in_bn_statistics_pass() -> bool:
    """True inside :func:`bn_statistics_pass` (the model's outputs will be ignored)."""
    return _pass_depth > 0


_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def get_bn_modules(model: nn.Module) -> List[nn.modules.batchnorm._BatchNorm]:
    """BatchNorm layers that are in training mode and track running statistics."""
    return [
        m
        for m in model.modules()
        if isinstance(m, _BN_TYPES) and m.training and m.track_running_stats
    ]


@torch.no_grad()
def update_bn_stats(model: nn.Module, data_loader: Iterable[Any], num_iters: int = 200) -> None:
    """Replace the running mean/var of every training-mode BN in ``model`` by the average of
    the exact batch statistics over ``num_iters`` batches of ``data_loader``.

    The model is run in training mode, as it is called in training (``model(batch)``), inside
    :func:`bn_statistics_pass`; its outputs are ignored and no parameter changes. BN layers
    the pass does not reach keep their statistics.

    Raises:
        ValueError: the loader yields fewer than ``num_iters`` batches.
    """
    bn_layers = get_bn_modules(model)
    if not bn_layers:
        return
    saved_momentum = [bn.momentum for bn in bn_layers]
    # Layers the statistics pass does not run (a momentum encoder) keep their statistics.
    saved_stats = [
        {k: v.clone() for k, v in bn.state_dict().items() if isinstance(v, torch.Tensor)}
        for bn in bn_layers
    ]
    visited = set()
    handles = [
        bn.register_forward_pre_hook(lambda module, _inputs: visited.add(id(module)))
        for bn in bn_layers
    ]
    for bn in bn_layers:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average == plain mean over the batches
    count = 0
    try:
        with bn_statistics_pass():
            for batch in itertools.islice(data_loader, num_iters):
                model(batch)
                count += 1
    finally:
        for handle in handles:
            handle.remove()
        for bn, momentum, stats in zip(bn_layers, saved_momentum, saved_stats):
            bn.momentum = momentum
            if id(bn) not in visited or count == 0:
                bn.load_state_dict(stats)
    if count < num_iters:
        raise ValueError(
            f"Precise BN wanted {num_iters} batches but the loader gave {count}; lower "
            "TEST.PRECISE_BN.NUM_ITER or use a larger TEST.PRECISE_BN.DATASET."
        )
    logging.getLogger(__name__).info(
        f"Precise BN: re-estimated {len(bn_layers)} BN layers on {count} batches."
    )
