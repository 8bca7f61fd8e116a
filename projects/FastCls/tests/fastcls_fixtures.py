"""Tiny data sets the FastCls tests write for themselves (Fashion-MNIST look-alikes come from
the core's synthetic generators)."""

from __future__ import annotations

import os
from typing import Dict, Sequence

import numpy as np
from PIL import Image


def make_image_folder(
    root: str, splits: Dict[str, Dict[str, int]], size: Sequence[int] = (20, 24)
) -> str:
    """``root/<split>/<class>/<n>.jpg`` with ``splits[split][class]`` images each."""
    rng = np.random.default_rng(0)
    for split, classes in splits.items():
        for name, count in classes.items():
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                array = rng.integers(0, 255, size=(*size, 3), dtype=np.uint8)
                Image.fromarray(array).save(os.path.join(folder, f"{i:03d}.jpg"))
    return root
