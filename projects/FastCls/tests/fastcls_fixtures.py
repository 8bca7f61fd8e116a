"""Tiny data sets the FastCls and FastRetri tests write for themselves."""

from __future__ import annotations

import os
from typing import Dict, Sequence

import numpy as np
from PIL import Image

from projects.FastCls.fastcls.idx import write_idx


def make_fashion_mnist(
    folder: str, per_class: int = 6, test_per_class: int = 3, seed: int = 0
) -> str:
    """Write the four Fashion-MNIST idx files (train gzipped, test plain) with tiny
    class-dependent images into ``folder``; returns it."""
    rng = np.random.default_rng(seed)
    for split, count, gz in (("train", per_class, True), ("t10k", test_per_class, False)):
        labels = np.repeat(np.arange(10, dtype=np.uint8), count)
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):  # a bright bar whose row depends on the class
            images[i, 2 + 2 * int(label) : 4 + 2 * int(label), :] = 250
        suffix = ".gz" if gz else ""
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte{suffix}"), images, compress=gz)
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte{suffix}"), labels, compress=gz)
    return folder


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
