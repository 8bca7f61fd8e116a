"""Train and test loaders: datasets from the registry -> CommDataset -> sampler -> dict batches."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import BatchSampler, DataLoader, Sampler

from fastreid.config import configurable
from fastreid.utils import comm

from . import samplers
from .common import CommDataset
from .datasets import DATASET_REGISTRY, resolve_datasets_root
from .datasets.bases import ProvidesTestItems
from .device_cache import DeviceDataOptions, build_device_train_loader, device_data_options
from .transforms import build_transforms

logger = logging.getLogger(__name__)

__all__ = [
    "TestSetFactory",
    "TrainSetFactory",
    "build_reid_test_loader",
    "build_reid_train_loader",
    "build_train_sampler",
    "fast_batch_collator",
]

# The seams between the registered datasets and the loaders: a project passes its own torch
# dataset class (or any factory) instead of re-implementing "registered dataset -> loader".
# train: factory(items, transform, datasets) with ``datasets`` the registered dataset objects
# of DATASETS.NAMES (whose ``train`` lists were concatenated into ``items``);
# test: factory(items, transform, dataset) with ``dataset`` the registered test dataset.
TrainSetFactory = Callable[[List[tuple], Optional[Callable], List[Any]], CommDataset]
TestSetFactory = Callable[[List[tuple], Optional[Callable], Any], CommDataset]

_SAMPLERS = (
    "TrainingSampler",
    "NaiveIdentitySampler",
    "BalancedIdentitySampler",
    "SetReWeightSampler",
)


def fast_batch_collator(samples: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Collate sample dicts into a batch dict.

    Tensors are stacked (``images`` -> (B, 3, H, W)), ints become int64 tensors (``targets``,
    ``camids``), floats float32 tensors, anything else (``img_paths``) stays a list.
    """
    batch: Dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        first = values[0]
        if isinstance(first, torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(first, int) and not isinstance(first, bool):
            batch[key] = torch.tensor(values, dtype=torch.int64)
        elif isinstance(first, float):
            batch[key] = torch.tensor(values, dtype=torch.float32)
        else:
            batch[key] = values
    return batch


def _datasets_root(cfg) -> str:
    return resolve_datasets_root(cfg.DATASETS.ROOT)


def build_train_sampler(cfg, data_source: Sequence[tuple]) -> Sampler:
    """The ``DATALOADER.SAMPLER_TRAIN`` sampler over ``data_source`` (the training items)."""
    name = cfg.DATALOADER.SAMPLER_TRAIN
    world_size = comm.get_world_size()
    if cfg.SOLVER.IMS_PER_BATCH % world_size != 0:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH ({cfg.SOLVER.IMS_PER_BATCH}) must be divisible by the number "
            f"of processes ({world_size})."
        )
    mini_batch_size = cfg.SOLVER.IMS_PER_BATCH // world_size
    num_instance = cfg.DATALOADER.NUM_INSTANCE
    logger.info("Using training sampler %s", name)
    if name == "TrainingSampler":
        return samplers.TrainingSampler(len(data_source))
    if name == "NaiveIdentitySampler":
        return samplers.NaiveIdentitySampler(data_source, mini_batch_size, num_instance)
    if name == "BalancedIdentitySampler":
        return samplers.BalancedIdentitySampler(data_source, mini_batch_size, num_instance)
    if name == "SetReWeightSampler":
        return samplers.SetReWeightSampler(
            data_source, mini_batch_size, num_instance, cfg.DATALOADER.SET_WEIGHT
        )
    raise ValueError(
        f"Unknown DATALOADER.SAMPLER_TRAIN '{name}'; choose one of {', '.join(_SAMPLERS)}."
    )


def _train_loader_from_config(
    cfg,
    *,
    train_set: Optional[CommDataset] = None,
    transforms: Optional[Callable] = None,
    sampler=None,
    dataset_class: Optional[type] = None,
    train_set_factory: Optional[TrainSetFactory] = None,
    **kwargs,
) -> Dict[str, Any]:
    if train_set is None:
        if transforms is None:
            transforms = build_transforms(cfg, is_train=True, to_float=False)
        items: List[tuple] = []
        datasets: List[Any] = []
        root = _datasets_root(cfg)
        for name in cfg.DATASETS.NAMES:
            dataset = DATASET_REGISTRY.get(name)(
                root=root,
                combineall=cfg.DATASETS.COMBINEALL,
                verbose=comm.is_main_process(),
                **kwargs,
            )
            datasets.append(dataset)
            items.extend(dataset.train)
        if train_set_factory is not None:
            train_set = train_set_factory(items, transforms, datasets)
        else:
            train_set = (dataset_class or CommDataset)(
                items, transforms, relabel=True, skip_corrupt=cfg.DATALOADER.SKIP_CORRUPT
            )
    if sampler is None:
        sampler = build_train_sampler(cfg, train_set.img_items)
    return {
        "train_set": train_set,
        "sampler": sampler,
        "total_batch_size": cfg.SOLVER.IMS_PER_BATCH,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
        "device_data": device_data_options(cfg),
        "split_cores": cfg.DATALOADER.SPLIT_CORES,
    }


def share_cores(num_workers: int) -> None:
    """Leave ``num_workers`` of the CPU cores to the loader workers: the main process keeps at
    most the remaining cores for its intra-op threads (torch already gives each worker one),
    so the two do not oversubscribe a small or busy machine. ``OMP_NUM_THREADS``, when set,
    decides instead."""
    if num_workers <= 0 or "OMP_NUM_THREADS" in os.environ:
        return
    getaffinity = getattr(os, "sched_getaffinity", None)
    cores = len(getaffinity(0)) if getaffinity else (os.cpu_count() or 1)
    main_threads = max(1, cores - num_workers)
    if torch.get_num_threads() > main_threads:
        logger.info(
            f"{num_workers} loader worker(s) on {cores} cores: the main process uses "
            f"{main_threads} thread(s) (DATALOADER.SPLIT_CORES)."
        )
        torch.set_num_threads(main_threads)


@configurable(from_config=_train_loader_from_config)
def build_reid_train_loader(
    train_set: CommDataset,
    *,
    sampler: Optional[Sampler] = None,
    total_batch_size: int,
    num_workers: int = 0,
    device_data: Optional[DeviceDataOptions] = None,
    split_cores: bool = True,
) -> DataLoader:
    """An infinite loader of training batches.

    Call as ``build_reid_train_loader(cfg)`` or with explicit arguments. With ``cfg``, the
    training items of ``DATASETS.NAMES`` go into ``dataset_class(items, transform,
    relabel=True, skip_corrupt=...)`` (default :class:`CommDataset`) or, for more control,
    ``train_set_factory(items, transform, datasets)``. Each batch is a dict:
    ``images`` float32 (B, 3, H, W) in 0-255, ``targets`` int64 (B,), ``camids`` int64 (B,),
    ``img_paths`` list of str, plus the items' extras; B = ``total_batch_size // world_size``.
    ``loader.dataset.num_classes`` is the number of training identities. With
    ``device_data`` (``DATALOADER.CACHE.ENABLED``) the images come from a decoded uint8 cache
    and are augmented per batch on the device (:mod:`fastreid.data.device_cache`).
    """
    world_size = comm.get_world_size()
    if total_batch_size % world_size != 0 or total_batch_size < world_size:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH ({total_batch_size}) must be a positive multiple of the number "
            f"of processes ({world_size})."
        )
    mini_batch_size = total_batch_size // world_size
    if split_cores:
        share_cores(num_workers)
    if sampler is None:
        sampler = samplers.TrainingSampler(len(train_set))
    batch_sampler = BatchSampler(sampler, mini_batch_size, drop_last=True)
    if device_data is not None:
        return build_device_train_loader(train_set, batch_sampler, device_data)
    return DataLoader(
        train_set,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=fast_batch_collator,
        pin_memory=torch.cuda.is_available(),
        # Not persistent: training draws each epoch through fresh workers seeded from
        # (seed, epoch) (fastreid.engine.data_stream), which --resume replays exactly.
        prefetch_factor=4 if num_workers > 0 else None,
    )


def _test_loader_from_config(
    cfg,
    dataset_name: str,
    *,
    transforms: Optional[Callable] = None,
    dataset_class: Optional[type] = None,
    test_set_factory: Optional[TestSetFactory] = None,
    all_queries: bool = False,
    **kwargs,
) -> Dict[str, Any]:
    if transforms is None:
        transforms = build_transforms(cfg, is_train=False, to_float=False)
    dataset = DATASET_REGISTRY.get(dataset_name)(
        root=_datasets_root(cfg), verbose=comm.is_main_process(), **kwargs
    )
    if isinstance(dataset, ProvidesTestItems):
        items, num_query = dataset.test_items()
    else:  # a registered class that is not a fastreid Dataset: query/gallery lists
        items, num_query = dataset.query + dataset.gallery, len(dataset.query)
    if test_set_factory is not None:
        test_set = test_set_factory(items, transforms, dataset)
    else:
        test_set = (dataset_class or CommDataset)(
            items,
            transforms,
            relabel=False,
            skip_corrupt=cfg.DATALOADER.SKIP_CORRUPT,
        )
    test_set.source, test_set.dataset_name = dataset, dataset_name
    return {
        "test_set": test_set,
        "test_batch_size": cfg.TEST.IMS_PER_BATCH,
        "num_query": len(test_set) if all_queries else num_query,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
        "split_cores": cfg.DATALOADER.SPLIT_CORES,
    }


@configurable(from_config=_test_loader_from_config)
def build_reid_test_loader(
    test_set: CommDataset,
    test_batch_size: int,
    num_query: int,
    num_workers: int = 0,
    split_cores: bool = True,
) -> Tuple[DataLoader, int]:
    """A loader over query then gallery images, each exactly once over all processes.

    Call as ``build_reid_test_loader(cfg, dataset_name)`` or with explicit arguments (the
    ``test_set`` items are the query items followed by the gallery items). With ``cfg``, the
    test items go into ``dataset_class(items, transform, relabel=False, skip_corrupt=...)``
    (default :class:`CommDataset`) or ``test_set_factory(items, transform, dataset)``;
    ``all_queries=True`` makes every image a query (classification). Returns
    ``(loader, num_query)``; batches are dicts as in :func:`build_reid_train_loader` with at
    most ``test_batch_size // world_size`` images.
    """
    mini_batch_size = max(1, test_batch_size // comm.get_world_size())
    if split_cores:
        share_cores(num_workers)
    batch_sampler = BatchSampler(
        samplers.InferenceSampler(len(test_set)), mini_batch_size, drop_last=False
    )
    loader = DataLoader(
        test_set,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=fast_batch_collator,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,  # evaluation runs many times: keep the workers
    )
    return loader, num_query
