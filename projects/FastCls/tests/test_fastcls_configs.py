"""FastReID's base-clas.yaml loads unchanged and gives its input pipeline."""

from __future__ import annotations

import os

import torch

from fastreid.config import get_cfg
from fastreid.data.transforms import build_transforms

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def test_base_clas_sizes_and_crops():
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(CONFIGS, "base-clas.yaml"))
    assert cfg.MODEL.HEADS.NAME == "ClasHead" and cfg.INPUT.SIZE_TRAIN == [0]
    image = torch.randint(0, 255, (3, 300, 420), dtype=torch.uint8)
    # Test: shorter side to 256 (420 -> 358), then the 224 centre crop.
    test = build_transforms(cfg, is_train=False)(image)
    assert test.shape == (3, 224, 224) and test.dtype == torch.float32
    # Train: no resize, RandomResizedCrop to 224.
    torch.manual_seed(0)
    assert build_transforms(cfg, is_train=True)(image).shape == (3, 224, 224)
