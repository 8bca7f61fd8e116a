"""The device data path: a uint8 cache of the decoded training set + per-batch augmentation.

With ``DATALOADER.CACHE.ENABLED`` the training loader decodes every training image once, with
several threads, resized to ``INPUT.SIZE_TRAIN`` (the CPU path's first deterministic step, so
the cached pixels equal what its ``Resize`` gives; every random op comes after it), into one
``(N, 3, H, W)`` uint8 tensor held on ``MODEL.DEVICE`` (``LOCATION: device``) or in pinned host
memory (``LOCATION: pinned``). Each batch is then a gather from the cache plus
:class:`~fastreid.data.device_augment.DeviceAugment` on the device: no worker processes, no
per-image Python in the common recipes.

The loader is a ``DataLoader`` over indices (no workers) whose collate function gathers and
augments, so the trainer's epoch stream (``EpochDataStream``: the persistent sampler, skipped
ahead on ``--resume``) drives it like the CPU loader. Its random parameters come from torch's
global CPU generator, whose state checkpoints save and ``--resume`` restores, so a resumed run
replays the same augmentation.

The cache size is checked before any image is decoded (after the first, when the size follows
from it): more than ``DATALOADER.CACHE.MAX_GB``, or more than the device / host has free,
stops with a :class:`CacheTooLargeError` saying what it needs and how to change it.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset
from torchvision.transforms import v2 as T

from fastreid.utils.errors import BadInputError

from .common import CommDataset
from .device_augment import DeviceAugment

__all__ = [
    "CacheTooLargeError",
    "CachedTrainSet",
    "DeviceBatchCollate",
    "DeviceDataOptions",
    "build_device_train_loader",
    "build_image_cache",
    "device_data_options",
]

logger = logging.getLogger(__name__)

GIB = 2**30
LOCATIONS = ("device", "pinned")


class CacheTooLargeError(BadInputError, MemoryError):
    """The training image cache does not fit its memory limit."""


@dataclass
class DeviceDataOptions:
    """What the device data path needs from the config."""

    cfg_input: Any
    device: torch.device
    location: str = "device"
    max_gb: float = 16.0
    decode_workers: int = 0


def device_data_options(cfg) -> Optional[DeviceDataOptions]:
    """The options of ``DATALOADER.CACHE`` (None when it is off)."""
    cache = cfg.DATALOADER.CACHE
    if not cache.ENABLED:
        return None
    if cache.LOCATION not in LOCATIONS:
        raise BadInputError(
            f"DATALOADER.CACHE.LOCATION {cache.LOCATION!r} is not one of {', '.join(LOCATIONS)}."
        )
    if cache.MAX_GB <= 0:
        raise BadInputError(f"DATALOADER.CACHE.MAX_GB must be positive, got {cache.MAX_GB}.")
    from fastreid.utils.env import resolve_device

    workers = int(cache.DECODE_WORKERS) or int(cfg.DATALOADER.NUM_WORKERS) or (os.cpu_count() or 1)
    return DeviceDataOptions(
        cfg_input=cfg.INPUT,
        device=resolve_device(cfg.MODEL.DEVICE),
        location=cache.LOCATION,
        max_gb=float(cache.MAX_GB),
        decode_workers=max(1, workers),
    )


def _resize_op(size_train: Sequence[int]):
    """The CPU path's resize (bicubic, antialiased); None for ``[0]`` (no resize)."""
    if not size_train or size_train[0] <= 0:
        return None
    size = int(size_train[0]) if len(size_train) == 1 else [int(s) for s in size_train]
    return T.Resize(size, interpolation=T.InterpolationMode.BICUBIC, antialias=True)


def _free_bytes(location: str, device: torch.device) -> Optional[int]:
    """Free memory where the cache goes (None when unknown)."""
    if location == "device" and device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_cache_fits(
    num_images: int, shape: Tuple[int, int, int], max_gb: float, location: str, device
) -> int:
    """Bytes of the cache; raises :class:`CacheTooLargeError` when it does not fit."""
    need = num_images * shape[0] * shape[1] * shape[2]
    what = (
        f"{need / GIB:.2f} GiB ({num_images} images x {shape[0]} x {shape[1]} x {shape[2]} uint8)"
    )
    fixes = "lower INPUT.SIZE_TRAIN, or set DATALOADER.CACHE.ENABLED False to use the CPU data path"
    if need > max_gb * GIB:
        raise CacheTooLargeError(
            f"The training image cache needs {what}, more than DATALOADER.CACHE.MAX_GB="
            f"{max_gb:g}. Raise DATALOADER.CACHE.MAX_GB if the memory is there, {fixes}."
        )
    free = _free_bytes(location, torch.device(device))
    if free is not None and need > free:
        where = f"{device}" if location == "device" else "pinned host memory"
        other = "pinned" if location == "device" else "device"
        raise CacheTooLargeError(
            f"The training image cache needs {what}, but only {free / GIB:.2f} GiB is free "
            f"for {where}. Set DATALOADER.CACHE.LOCATION {other}, {fixes}."
        )
    return need


def build_image_cache(
    train_set: CommDataset,
    size_train: Sequence[int],
    *,
    location: str = "device",
    device: Any = "cpu",
    max_gb: float = 16.0,
    workers: int = 4,
) -> Tuple[torch.Tensor, List[int]]:
    """Decode every item of ``train_set`` once into ``(N, 3, H, W)`` uint8.

    Returns the cache and, per item, the index actually decoded (an unreadable file replaced
    by another image of its identity under ``DATALOADER.SKIP_CORRUPT``). Uses ``workers``
    threads (decoding and resizing release the GIL).
    """
    device = torch.device(device)
    n = len(train_set)
    if n == 0:
        raise BadInputError("The training set is empty; nothing to cache.")
    resize = _resize_op(size_train)

    def load(i: int) -> Tuple[torch.Tensor, int]:
        image, used = train_set._load(i)
        if resize is not None:
            image = resize(image)
        return image, used

    start = time.perf_counter()
    first, first_used = load(0)
    shape = tuple(first.shape)
    check_cache_fits(n, shape, max_gb, location, device)
    pin = torch.cuda.is_available() and (location == "pinned" or device.type == "cuda")
    host = torch.empty((n, *shape), dtype=torch.uint8, pin_memory=pin)
    host[0] = first
    used = [first_used] + [0] * (n - 1)

    def fill(chunk: range) -> None:
        for i in chunk:
            image, used[i] = load(i)
            if tuple(image.shape) != shape:
                raise BadInputError(
                    f"DATALOADER.CACHE needs one image size, but {train_set.img_items[i][0]} "
                    f"gives {tuple(image.shape)} and the first image {shape}; set "
                    "INPUT.SIZE_TRAIN to [height, width]."
                )
            host[i] = image

    step = max(1, (n - 1 + workers * 4 - 1) // (workers * 4))
    chunks = [range(s, min(s + step, n)) for s in range(1, n, step)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(fill, chunks):  # re-raises the first error
            pass
    cache = host.to(device) if location == "device" and device.type != "cpu" else host
    logger.info(
        "Cached %d training images (%s, %.2f GiB, %s) in %.1f s with %d threads",
        n,
        "x".join(str(s) for s in shape),
        cache.numel() / GIB,
        f"on {device}" if location == "device" else "pinned host memory",
        time.perf_counter() - start,
        workers,
    )
    return cache, used


class CachedTrainSet(Dataset):
    """Indices into the cache, standing in for the ``CommDataset`` it was built from.

    ``len``, ``num_classes``, ``img_items`` and every other attribute are the training set's;
    items are their own index (the collate function does the work)."""

    def __init__(self, train_set: CommDataset) -> None:
        self.train_set = train_set

    def __len__(self) -> int:
        return len(self.train_set)

    def __getitem__(self, index: int) -> int:
        return int(index)

    def __getitems__(self, indices: List[int]) -> List[int]:
        return list(indices)

    def __getattr__(self, name: str) -> Any:
        if name == "train_set":  # not yet set (unpickling)
            raise AttributeError(name)
        return getattr(self.train_set, name)


def _meta(train_set: CommDataset, index: int) -> Dict[str, Any]:
    """A sample dict without the image, as ``CommDataset.__getitem__`` gives."""
    path, pid, camid, *rest = train_set.img_items[index]
    sample: Dict[str, Any] = {
        "targets": train_set._index(pid, train_set.pid_dict),
        "camids": train_set._index(camid, train_set.cam_dict),
        "img_paths": path,
    }
    if rest:
        for key, value in rest[0].items():
            if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
                value = torch.tensor(value)
            sample[key] = value
    return sample


class DeviceBatchCollate:
    """Indices -> a batch dict: cache gather + :class:`DeviceAugment` on ``device``.

    Keys as the CPU loader's: ``images`` uint8 ``(B, 3, H, W)``, ``targets`` and ``camids``
    int64 ``(B,)``, ``img_paths`` and the items' extras; tensors are on ``device``.
    """

    def __init__(
        self,
        cache: torch.Tensor,
        metas: List[Dict[str, Any]],
        augment: DeviceAugment,
        device: Any,
    ) -> None:
        self.cache = cache
        self.augment = augment
        self.device = torch.device(device)
        self.paths = [m["img_paths"] for m in metas]
        self.targets = torch.tensor([m["targets"] for m in metas], dtype=torch.int64)
        self.camids = torch.tensor([m["camids"] for m in metas], dtype=torch.int64)
        self.targets_dev = self.targets.to(self.device)
        self.camids_dev = self.camids.to(self.device)
        extra_keys = [k for k in metas[0] if k not in ("targets", "camids", "img_paths")]
        self.extras = [{k: m[k] for k in extra_keys} for m in metas] if extra_keys else None

    def _gather(self, index: torch.Tensor) -> torch.Tensor:
        if self.cache.device == self.device:
            return self.cache.index_select(0, index.to(self.device, non_blocking=True))
        # Host cache: gather into pinned memory, then one asynchronous copy.
        out = torch.empty(
            (len(index), *self.cache.shape[1:]),
            dtype=torch.uint8,
            pin_memory=self.device.type == "cuda",
        )
        torch.index_select(self.cache, 0, index, out=out)
        return out.to(self.device, non_blocking=True)

    def __call__(self, indices: List[int]) -> Dict[str, Any]:
        from .build import fast_batch_collator

        index = torch.as_tensor(indices, dtype=torch.int64)
        index_dev = index.to(self.device, non_blocking=True)
        batch: Dict[str, Any] = {
            "images": self.augment(self._gather(index)),
            "targets": self.targets_dev.index_select(0, index_dev),
            "camids": self.camids_dev.index_select(0, index_dev),
            "img_paths": [self.paths[i] for i in indices],
        }
        if self.extras is not None:
            extras = fast_batch_collator([self.extras[i] for i in indices])
            for key, value in extras.items():
                batch[key] = value.to(self.device) if isinstance(value, torch.Tensor) else value
        return batch


def build_device_train_loader(
    train_set: CommDataset, batch_sampler: BatchSampler, options: DeviceDataOptions
) -> DataLoader:
    """The training loader of the device data path (see the module docstring)."""
    augment = DeviceAugment(options.cfg_input)
    cache, used = build_image_cache(
        train_set,
        options.cfg_input.SIZE_TRAIN,
        location=options.location,
        device=options.device,
        max_gb=options.max_gb,
        workers=options.decode_workers,
    )
    metas = [_meta(train_set, u) for u in used]
    logger.info("Device augmentation on %s: %s", options.device, augment.describe())
    return DataLoader(
        CachedTrainSet(train_set),
        batch_sampler=batch_sampler,
        num_workers=0,
        collate_fn=DeviceBatchCollate(cache, metas, augment, options.device),
    )
