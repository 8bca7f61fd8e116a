"""Image transforms built from ``INPUT.*`` on torchvision.transforms.v2 over uint8 tensors."""

from __future__ import annotations

from typing import List, Sequence, Union

import torch
from torchvision.transforms import v2 as T

from .random_patch import RandomPatch


def _size(size: Sequence[int]) -> Union[int, List[int]]:
    """[h, w] -> [h, w]; [s] -> s (shorter side)."""
    return int(size[0]) if len(size) == 1 else [int(s) for s in size]


def build_transforms(cfg, is_train: bool = True, to_float: bool = True) -> T.Compose:
    """The train or test transform of ``cfg.INPUT``.

    Input: uint8 RGB tensor (3, H, W) (what ``read_image`` returns). Output: float32 tensor
    (3, SIZE[0], SIZE[1]) with values in 0-255 (the model normalises); with ``to_float=False``
    the output stays uint8 (the loaders do that and convert whole batches, which moves 4x less
    data from the worker processes).

    Train order (as FastReID): AutoAugment -> resize -> random resized crop -> pad + random
    crop -> flip -> color jitter -> affine -> AugMix -> to float -> random erasing -> random
    patch. Test: resize -> center crop (with ``INPUT.CROP.ENABLED``) -> to float.

    Sizes follow FastReID: ``[h, w]``; a single value ``[s]`` resizes the shorter side to
    ``s``; ``[0]`` does not resize.
    """
    cfg_in = cfg.INPUT
    steps: list = []
    to_dtype = [T.ToDtype(torch.float32, scale=False)] if to_float else []
    if not is_train:
        if cfg_in.SIZE_TEST[0] > 0:
            steps.append(
                T.Resize(
                    _size(cfg_in.SIZE_TEST),
                    interpolation=T.InterpolationMode.BICUBIC,
                    antialias=True,
                )
            )
        if cfg_in.CROP.ENABLED:
            steps.append(T.CenterCrop(_size(cfg_in.CROP.SIZE)))
        # SIZE [0] and uint8 output: nothing to do, but Compose needs one step.
        return T.Compose(steps + to_dtype or [T.Identity()])

    size_train = cfg_in.SIZE_TRAIN
    if cfg_in.AUTOAUG.ENABLED and cfg_in.AUTOAUG.PROB > 0:
        steps.append(
            T.RandomApply([T.AutoAugment(T.AutoAugmentPolicy.IMAGENET)], p=cfg_in.AUTOAUG.PROB)
        )
    if size_train[0] > 0:
        steps.append(
            T.Resize(_size(size_train), interpolation=T.InterpolationMode.BICUBIC, antialias=True)
        )
    if cfg_in.CROP.ENABLED:
        steps.append(
            T.RandomResizedCrop(
                _size(cfg_in.CROP.SIZE),
                scale=tuple(cfg_in.CROP.SCALE),
                ratio=tuple(cfg_in.CROP.RATIO),
                interpolation=T.InterpolationMode.BICUBIC,
                antialias=True,
            )
        )
    if cfg_in.PADDING.ENABLED:
        crop_size = _size(cfg_in.CROP.SIZE if cfg_in.CROP.ENABLED else size_train)
        # One op: pad by PADDING.SIZE on every side, then crop back at a random place.
        steps.append(
            T.RandomCrop(crop_size, padding=cfg_in.PADDING.SIZE, padding_mode=cfg_in.PADDING.MODE)
        )
    if cfg_in.FLIP.ENABLED:
        steps.append(T.RandomHorizontalFlip(p=cfg_in.FLIP.PROB))
    if cfg_in.CJ.ENABLED:
        jitter = T.ColorJitter(
            cfg_in.CJ.BRIGHTNESS, cfg_in.CJ.CONTRAST, cfg_in.CJ.SATURATION, cfg_in.CJ.HUE
        )
        steps.append(T.RandomApply([jitter], p=cfg_in.CJ.PROB))
    if cfg_in.AFFINE.ENABLED:
        steps.append(T.RandomAffine(degrees=10, scale=(0.9, 1.1), shear=0.1, fill=0))
    if cfg_in.AUGMIX.ENABLED and cfg_in.AUGMIX.PROB > 0:
        steps.append(T.RandomApply([T.AugMix()], p=cfg_in.AUGMIX.PROB))
    steps += to_dtype
    if cfg_in.REA.ENABLED:
        value = [float(v) if to_float else round(v) for v in cfg_in.REA.VALUE]
        steps.append(T.RandomErasing(p=cfg_in.REA.PROB, value=value))
    if cfg_in.RPT.ENABLED:
        steps.append(RandomPatch(prob_happen=cfg_in.RPT.PROB))
    return T.Compose(steps or [T.Identity()])
