"""Tiny Fashion-MNIST look-alikes: the four idx files with class-dependent 28x28 images."""

from __future__ import annotations

import os

import numpy as np

from ..idx import write_idx

__all__ = ["write_fashion_mnist_like"]


def write_fashion_mnist_like(
    folder: str, per_class: int = 6, test_per_class: int = 3, seed: int = 0
) -> str:
    """Write the four Fashion-MNIST idx files (train gzipped, test plain) into ``folder``,
    ``per_class`` / ``test_per_class`` images of each of the 10 classes; returns ``folder``.

    Each image is dark noise with a bright bar whose row depends on the class, so a small
    network learns the classes in a few steps.
    """
    rng = np.random.default_rng(seed)
    for split, count, gz in (("train", per_class, True), ("t10k", test_per_class, False)):
        labels = np.repeat(np.arange(10, dtype=np.uint8), count)
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 + 2 * int(label) : 4 + 2 * int(label), :] = 250
        suffix = ".gz" if gz else ""
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte{suffix}"), images, compress=gz)
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte{suffix}"), labels, compress=gz)
    return folder
