"""FastReID's FastRetri configs load unchanged and build their model and input pipeline."""

from __future__ import annotations

import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.data.transforms import build_transforms
from fastreid.modeling import build_model
from projects.FastRetri.fastretri import add_retri_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def _load(name):
    cfg = add_retri_config(get_cfg())
    cfg.merge_from_file(os.path.join(CONFIGS, name))
    return cfg


@pytest.mark.parametrize(
    "name,recalls,dataset",
    [
        ("cub.yml", [1, 2, 4, 8, 16, 32], "CUB"),
        ("cars.yml", [1, 2, 4, 8, 16, 32], "Cars196"),
        ("sop.yml", [1, 10, 100, 1000], "SOP"),
        ("inshop.yml", [1, 10, 20, 30, 40, 50], "InShop"),
    ],
)
def test_recipes_load_with_their_recalls(name, recalls, dataset):
    cfg = _load(name)
    assert list(cfg.TEST.RECALLS) == recalls
    assert tuple(cfg.DATASETS.TESTS) == (dataset,)
    assert cfg.MODEL.HEADS.POOL_LAYER == "GeneralizedMeanPooling"


def test_cub_pipeline_and_model():
    cfg = _load("cub.yml")
    image = torch.randint(0, 255, (3, 300, 500), dtype=torch.uint8)
    assert build_transforms(cfg, is_train=False)(image).shape == (3, 224, 224)
    assert build_transforms(cfg, is_train=True)(image).shape == (3, 224, 224)
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.HEADS.NUM_CLASSES = 100
    model = build_model(cfg).eval()
    with torch.no_grad():
        features = model({"images": torch.rand(2, 3, 224, 224) * 255})
    assert features.shape == (2, 2048)  # the BN-neck feature FastRetri retrieves with


def test_inshop_keeps_the_image_size_before_the_crop():
    cfg = _load("inshop.yml")
    image = torch.randint(0, 255, (3, 256, 256), dtype=torch.uint8)
    assert build_transforms(cfg, is_train=False)(image).shape == (3, 224, 224)
