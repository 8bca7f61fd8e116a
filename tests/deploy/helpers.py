"""Small models and recipe builders shared by the deploy tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from fastreid.export.verify import compare_features, synthetic_images, torch_runner
from fastreid.modeling.layers.ibn import IBN
from fastreid.modeling.layers.pooling import AdaptiveAvgMaxPool, GeneralizedMeanPoolingP
from fastreid.modeling.layers.se_layer import SELayer

ROOT = Path(__file__).resolve().parents[2]
SIZE = (64, 32)
RECIPES = {
    "demo": "configs/Synthetic/bagtricks_R18.yml",
    "bot_R50": "configs/Market1501/bagtricks_R50.yml",
    "bot_R50-ibn": "configs/Market1501/bagtricks_R50-ibn.yml",
    "agw_R50": "configs/Market1501/AGW_R50.yml",
    "agw_R50-ibn": "configs/Market1501/AGW_R50-ibn.yml",
    "sbs_R50": "configs/Market1501/sbs_R50.yml",
    "sbs_R50-ibn": "configs/Market1501/sbs_R50-ibn.yml",
    "mgn_R50": "configs/Market1501/mgn_R50.yml",
    "mgn_R50-ibn": "configs/Market1501/mgn_R50-ibn.yml",
}


def randomize_norms(
    model: nn.Module, size: tuple[int, int] = SIZE, calibrate: bool = True
) -> nn.Module:
    """Non-trivial norm parameters and statistics, as a trained model has.

    Affine parameters are drawn at random. With ``calibrate`` the BN running statistics are
    measured on a batch of test-like images (BN layers alone in training mode), so activations
    stay in a realistic range through deep networks instead of growing block after block;
    without it (shallow models) they are drawn at random too.
    """
    generator = torch.Generator().manual_seed(0)
    norms = [
        m
        for m in model.modules()
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.InstanceNorm2d))
    ]
    for module in norms:
        if module.affine:
            module.weight.data = torch.empty_like(module.weight).uniform_(
                0.5, 1.5, generator=generator
            )
            module.bias.data = torch.empty_like(module.bias).uniform_(
                -0.2, 0.2, generator=generator
            )
    batch_norms = [m for m in norms if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not calibrate:
        for module in batch_norms:
            module.running_mean.uniform_(-0.2, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
    elif batch_norms:
        model.eval()
        for module in batch_norms:
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
            module.train()
        # Calibrate on images like the ones the tests compare on.
        images = torch.as_tensor(synthetic_images(8, size, seed=0)).float()
        with torch.no_grad():
            model(images)
        for module in batch_norms:
            module.momentum = 0.1
    return model.eval()


def recipe_size(name: str) -> tuple[int, int]:
    """Smallest test input of a recipe (MGN splits its map in 3 stripes)."""
    return (96, 32) if name.startswith("mgn") else SIZE


def build_recipe(name: str) -> nn.Module:
    """The recipe's eval-mode model with random weights at the small test size."""
    from fastreid.predictor import build_model_from_config

    size = recipe_size(name)
    opts = [
        "INPUT.SIZE_TEST",
        f"[{size[0]},{size[1]}]",
        "MODEL.DEVICE",
        "cpu",
        "MODEL.HEADS.NUM_CLASSES",
        "8",
    ]
    return randomize_norms(build_model_from_config(ROOT / RECIPES[name], opts=opts), size)


class ToyReID(nn.Module):
    """A small re-ID-like network: pixel normalisation, IBN, max pool, SE, GeM + avg-max, BNNeck."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor([123.7, 116.3, 103.5]).view(1, -1, 1, 1))
        self.register_buffer("pixel_std", torch.tensor([58.4, 57.1, 57.4]).view(1, -1, 1, 1))
        self.conv1 = nn.Conv2d(3, 16, 7, stride=2, padding=3, bias=False)
        self.bn1 = IBN(16)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.se = SELayer(32, 4)
        self.gem = GeneralizedMeanPoolingP()
        self.avgmax = AdaptiveAvgMaxPool()
        self.neck = nn.BatchNorm2d(64)
        randomize_norms(self, calibrate=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.pixel_mean) / self.pixel_std
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        y = self.relu(self.bn2(self.conv2(x)))
        y = self.se(y) + y
        pooled = torch.cat([self.gem(y), self.avgmax(y)], dim=1)
        return self.neck(pooled)[..., 0, 0]


def assert_matches(
    model: nn.Module, runner, batches=(1, 7), minimum: float = 0.9999, size=SIZE
) -> None:
    """``runner`` reproduces ``model``'s features at every batch size in ``batches``."""
    images = synthetic_images(max(batches), size, seed=1)
    reference = torch_runner(model)(images)
    for n in batches:
        cosine, max_diff = compare_features(reference[:n], runner(images[:n]))
        assert cosine >= minimum, f"batch {n}: cosine {cosine} (max diff {max_diff})"
    assert np.isfinite(reference).all()
