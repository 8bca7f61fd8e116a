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


def _fastreid_reference_pipeline(size, padding, flip_prob, rea_prob, rea_value):
    """FastReID's documented train pipeline, written plainly on PIL images: bicubic resize,
    pad + random crop, flip, to a float tensor in 0-255, then torchvision's RandomErasing
    (scale 0.02-0.33, ratio 0.3-3.3, 10 attempts) with the given fill."""
    import numpy as np
    from torchvision import transforms as T1

    def to_tensor_0_255(pil):
        return torch.from_numpy(np.asarray(pil, dtype=np.float32).copy()).permute(2, 0, 1)

    return T1.Compose(
        [
            T1.Resize(size, interpolation=T1.InterpolationMode.BICUBIC),
            T1.Pad(padding),
            T1.RandomCrop(size),
            T1.RandomHorizontalFlip(flip_prob),
            to_tensor_0_255,
            T1.RandomErasing(p=rea_prob, value=list(rea_value)),
        ]
    )


@pytest.mark.parametrize("to_float", [True, False])
def test_train_transform_draws_what_fastreids_pipeline_draws(to_float):
    """Same input, same torch seed: our tensor pipeline and FastReID's PIL pipeline give the same
    crop, flip and erased box (the erased value differs by rounding on the uint8 path)."""
    from PIL import Image

    cfg = get_cfg()
    cfg.merge_from_list(
        ["INPUT.SIZE_TRAIN", [32, 16], "INPUT.PADDING.ENABLED", True, "INPUT.PADDING.SIZE", 5,
         "INPUT.REA.ENABLED", True, "INPUT.REA.PROB", 0.5, "INPUT.FLIP.ENABLED", True,
         "INPUT.FLIP.PROB", 0.5]
    )  # fmt: skip
    ours = build_transforms(cfg, is_train=True, to_float=to_float)
    ref = _fastreid_reference_pipeline([32, 16], 5, 0.5, 0.5, cfg.INPUT.REA.VALUE)
    x = image(32, 16)
    pil = Image.fromarray(x.permute(1, 2, 0).numpy())
    erased = 0
    for seed in range(200):
        torch.manual_seed(seed)
        a = ours(x).float()
        torch.manual_seed(seed)
        b = ref(pil)
        assert a.shape == b.shape == (3, 32, 16)
        assert (a - b).abs().max().item() <= (0.0 if to_float else 0.5), seed
        erased += bool((b == torch.tensor(cfg.INPUT.REA.VALUE)[:, None, None]).all(0).any())
    assert 70 < erased < 130  # p = 0.5, and the draws do happen
