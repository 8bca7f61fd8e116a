"""Random patch (Zhou & Xiang, OSNet): paste a patch cut from an earlier training image."""

from __future__ import annotations

import math
import random
from collections import deque

import torch
from torchvision.transforms.v2 import functional as F


class RandomPatch(torch.nn.Module):
    """Every image gives a random patch to a pool; with ``prob_happen`` a pooled patch (maybe
    flipped and slightly rotated) is pasted at a random place of the image.

    Works on (C, H, W) tensors of any dtype; the pool lives in each loader worker.

    Args:
        prob_happen: probability of pasting a patch.
        pool_capacity: patches kept (oldest dropped first).
        min_sample_size: patches needed in the pool before pasting starts.
        patch_min_area, patch_max_area: patch area range, relative to the image.
        patch_min_ratio: aspect ratio range is [patch_min_ratio, 1 / patch_min_ratio].
        prob_rotate: probability of rotating the patch by up to +-10 degrees.
        prob_flip_leftright: probability of flipping the patch.
    """

    def __init__(
        self,
        prob_happen: float = 0.5,
        pool_capacity: int = 50000,
        min_sample_size: int = 100,
        patch_min_area: float = 0.01,
        patch_max_area: float = 0.5,
        patch_min_ratio: float = 0.1,
        prob_rotate: float = 0.5,
        prob_flip_leftright: float = 0.5,
    ) -> None:
        super().__init__()
        self.prob_happen = prob_happen
        self.min_sample_size = min_sample_size
        self.patch_min_area = patch_min_area
        self.patch_max_area = patch_max_area
        self.patch_min_ratio = patch_min_ratio
        self.prob_rotate = prob_rotate
        self.prob_flip_leftright = prob_flip_leftright
        self.pool: deque = deque(maxlen=pool_capacity)

    def _patch_size(self, height: int, width: int):
        for _ in range(100):
            area = random.uniform(self.patch_min_area, self.patch_max_area) * height * width
            ratio = random.uniform(self.patch_min_ratio, 1.0 / self.patch_min_ratio)
            h = int(round(math.sqrt(area * ratio)))
            w = int(round(math.sqrt(area / ratio)))
            if 0 < h < height and 0 < w < width:
                return h, w
        return None

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        height, width = img.shape[-2:]
        size = self._patch_size(height, width)
        if size is not None:
            h, w = size
            y, x = random.randint(0, height - h), random.randint(0, width - w)
            self.pool.append(img[..., y : y + h, x : x + w].clone())
        if len(self.pool) < self.min_sample_size or random.random() > self.prob_happen:
            return img
        patch = random.choice(self.pool)
        if random.random() < self.prob_flip_leftright:
            patch = patch.flip(-1)
        if random.random() < self.prob_rotate:
            patch = F.rotate(patch, random.uniform(-10, 10))
        h, w = patch.shape[-2:]
        if h > height or w > width:
            return img
        y, x = random.randint(0, height - h), random.randint(0, width - w)
        img = img.clone()
        img[..., y : y + h, x : x + w] = patch.to(img.dtype)
        return img

    def extra_repr(self) -> str:
        return f"prob_happen={self.prob_happen}, pool_capacity={self.pool.maxlen}"
