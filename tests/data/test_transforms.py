"""Transforms from INPUT.*: shapes, dtypes, value range, random patch."""

from __future__ import annotations

import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.data.transforms import RandomPatch, build_transforms

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "configs")


def image(h=32, w=16):
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8)


def all_augmentations_cfg():
    cfg = get_cfg()
    cfg.INPUT.SIZE_TRAIN = [64, 32]
    for key in ("FLIP", "PADDING", "CJ", "AFFINE", "AUTOAUG", "AUGMIX", "REA", "RPT"):
        cfg.INPUT[key].ENABLED = True
    cfg.INPUT.AUTOAUG.PROB = cfg.INPUT.AUGMIX.PROB = cfg.INPUT.CJ.PROB = 1.0
    return cfg


def test_train_transform_gives_float_image_of_train_size():
    out = build_transforms(all_augmentations_cfg(), is_train=True)(image())
    assert out.shape == (3, 64, 32) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 255


def test_test_transform_only_resizes():
    cfg = get_cfg()
    cfg.INPUT.SIZE_TEST = [48, 24]
    out = build_transforms(cfg, is_train=False)(image())
    assert out.shape == (3, 48, 24) and out.dtype == torch.float32


def test_uint8_output_when_asked():
    out = build_transforms(all_augmentations_cfg(), is_train=True, to_float=False)(image())
    assert out.dtype == torch.uint8 and out.shape == (3, 64, 32)


def test_random_resized_crop_sets_the_output_size():
    cfg = get_cfg()
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.SIZE = [40, 20]
    assert build_transforms(cfg, is_train=True)(image(80, 40)).shape == (3, 40, 20)


def test_random_erasing_fills_with_the_configured_value():
    cfg = get_cfg()
    cfg.INPUT.SIZE_TRAIN = [64, 32]
    cfg.INPUT.REA.ENABLED = True
    cfg.INPUT.REA.PROB = 1.0
    cfg.INPUT.REA.VALUE = [1.0, 2.0, 3.0]
    out = build_transforms(cfg, is_train=True)(torch.full((3, 64, 32), 200, dtype=torch.uint8))
    assert (out[0] == 1.0).any() and (out[2] == 3.0).any()


def test_random_patch_pastes_pool_patches_once_warm():
    patch = RandomPatch(
        prob_happen=1.0, min_sample_size=1, prob_rotate=0.0, prob_flip_leftright=0.0
    )
    patch(torch.zeros(3, 32, 16))  # fills the pool with a black patch
    out = patch(torch.full((3, 32, 16), 9.0))
    assert (out == 0).any() and (out == 9.0).any()


@pytest.mark.parametrize(
    "recipe", ["Base-bagtricks.yml", "Base-AGW.yml", "Base-SBS.yml", "Base-MGN.yml"]
)
def test_recipe_transforms_build_and_run(recipe):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(CONFIGS, recipe))
    out = build_transforms(cfg, is_train=True)(image(128, 64))
    assert out.shape == (3, *cfg.INPUT.SIZE_TRAIN) and out.dtype == torch.float32
