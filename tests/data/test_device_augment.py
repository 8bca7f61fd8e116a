"""The batched device augmentation against the CPU path's own transforms.

Deterministic parts must match pixel for pixel; random parts must draw from the same
distribution (rates and box statistics over a few thousand seeded draws, compared with
statistical tolerances far from what a wrong distribution gives).
"""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms.v2 import functional as F

from fastreid.config import get_cfg
from fastreid.data.device_augment import (
    DeviceAugment,
    color_jitter_batch,
    erase_batch,
    flip_batch,
    pad_crop_batch,
    sample_color_jitter,
    sample_erase_boxes,
)
from fastreid.data.transforms import build_transforms
from fastreid.utils.errors import BadInputError

N = 3000  # draws per distribution


def _cfg(h=24, w=12, **ops):
    """Every augmentation off except ``ops`` (e.g. FLIP=dict(ENABLED=True))."""
    cfg = get_cfg()
    c = cfg.INPUT
    c.SIZE_TRAIN = [h, w]
    for name in ("FLIP", "PADDING", "CJ", "REA", "RPT", "AFFINE", "CROP"):
        c[name].ENABLED = False
    for name, values in ops.items():
        for key, value in values.items():
            c[name][key] = value
    return cfg


def _cpu_draws(cfg, image: torch.Tensor, n: int = N) -> torch.Tensor:
    """``n`` outputs of the CPU path's train transform (uint8, as the loaders use it)."""
    transform = build_transforms(cfg, is_train=True, to_float=False)
    return torch.stack([transform(image) for _ in range(n)])


def _ks(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = a.double().sort().values, b.double().sort().values
    grid = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, grid, right=True).double() / len(a)
    cdf_b = torch.searchsorted(b, grid, right=True).double() / len(b)
    return (cdf_a - cdf_b).abs().max().item()


# Critical KS value at alpha = 1e-4 for two samples of N: sqrt(-ln(alpha/2)/2) * sqrt(2/N).
KS_LIMIT = math.sqrt(-math.log(0.5e-4) / 2) * math.sqrt(2 / N)


def _rates_agree(p1: float, p2: float, n: int = N) -> bool:
    p = (p1 + p2) / 2
    return abs(p1 - p2) < 5 * math.sqrt(2 * p * (1 - p) / n) + 1e-9


def _coordinate_image(h=24, w=12) -> torch.Tensor:
    """Channel 0 = row + 1, channel 1 = column + 1, channel 2 = 200 (0 marks padding)."""
    ys = torch.arange(1, h + 1).view(h, 1).expand(h, w)
    xs = torch.arange(1, w + 1).view(1, w).expand(h, w)
    return torch.stack([ys, xs, torch.full((h, w), 200)]).to(torch.uint8)


# -- exact equality of the deterministic parts ------------------------------------------------
def test_flip_is_a_mirror_of_the_chosen_images():
    images = torch.randint(0, 256, (5, 3, 8, 6), dtype=torch.uint8)
    flip = torch.tensor([True, False, True, False, False])
    out = flip_batch(images, flip)
    for b in range(5):
        expected = F.horizontal_flip(images[b]) if flip[b] else images[b]
        assert torch.equal(out[b], expected)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_crop_at_an_offset_equals_the_cpu_pad_then_crop(mode):
    images = torch.randint(0, 256, (6, 3, 20, 12), dtype=torch.uint8)
    top = torch.tensor([0, 3, 20, 7, 1, 10])  # 0 and 2 * padding are the extremes
    left = torch.tensor([0, 20, 5, 2, 19, 11])
    out = pad_crop_batch(images, 10, mode, top, left, (20, 12))
    for b in range(6):
        padded = F.pad(images[b], [10], padding_mode=mode)
        assert torch.equal(out[b], F.crop(padded, int(top[b]), int(left[b]), 20, 12)), b


def test_erasing_a_box_equals_torchvision_erase():
    images = torch.randint(0, 256, (4, 3, 16, 8), dtype=torch.uint8)
    boxes = torch.tensor([[0, 0, 3, 2], [5, 1, 10, 7], [15, 7, 1, 1], [2, 2, 4, 4]])
    erase = torch.tensor([True, True, True, False])
    value = [124, 116, 104]
    out = erase_batch(images, erase, boxes, value)
    fill = torch.tensor(value, dtype=torch.uint8).view(3, 1, 1)
    for b in range(4):
        i, j, h, w = boxes[b].tolist()
        expected = F.erase(images[b], i, j, h, w, fill) if erase[b] else images[b]
        assert torch.equal(out[b], expected), b


def test_each_color_op_matches_torchvision_on_uint8():
    images = torch.randint(0, 256, (8, 3, 12, 10), dtype=torch.uint8)
    kernels = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    factors = torch.stack(
        [torch.rand(8) * 0.6 + 0.7] * 3 + [torch.rand(8) * 0.4 - 0.2], 1
    )  # (8, 4)
    for op, kernel in enumerate(kernels):
        order = torch.tensor([[op] + [k for k in range(4) if k != op]] * 8)
        enabled = [k == op for k in range(4)]
        out = color_jitter_batch(images, torch.ones(8, dtype=torch.bool), order, factors, enabled)
        for b in range(8):
            expected = kernel(images[b], float(factors[b, op]))
            diff = (out[b].int() - expected.int()).abs()
            # Same formula; float rounding may move a rare pixel by one level.
            assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3, (op, b)


def test_color_jitter_applies_ops_in_each_images_own_order():
    images = torch.randint(0, 256, (2, 3, 10, 10), dtype=torch.uint8)
    factors = torch.tensor([[1.3, 0.6, 1.0, 0.0]] * 2)
    order = torch.tensor([[0, 1, 2, 3], [1, 0, 2, 3]])  # brightness first / contrast first
    out = color_jitter_batch(images, torch.tensor([True, True]), order, factors, [True] * 4)
    for b, ops in enumerate(([0, 1], [1, 0])):
        expected = images[b]
        for op in ops:
            kernel = F.adjust_brightness if op == 0 else F.adjust_contrast
            expected = kernel(expected, float(factors[b, op]))
        assert (out[b].int() - expected.int()).abs().max() <= 1


# -- distributions against the CPU path ------------------------------------------------------
def test_flip_rate_matches_the_cpu_path():
    cfg = _cfg(FLIP=dict(ENABLED=True, PROB=0.3))
    image = _coordinate_image()
    cpu = _cpu_draws(cfg, image)
    dev = DeviceAugment(cfg.INPUT)(image.expand(N, -1, -1, -1).contiguous())
    flipped = F.horizontal_flip(image)
    rate_cpu = (cpu == flipped).flatten(1).all(1).float().mean().item()
    rate_dev = (dev == flipped).flatten(1).all(1).float().mean().item()
    assert _rates_agree(rate_cpu, rate_dev) and abs(rate_dev - 0.3) < 0.04
    # Every output is the image or its mirror.
    assert ((dev == flipped).flatten(1).all(1) | (dev == image).flatten(1).all(1)).all()


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_pad_crop_offsets_match_the_cpu_path(mode):
    pad = 4
    cfg = _cfg(PADDING=dict(ENABLED=True, SIZE=pad, MODE=mode))
    image = _coordinate_image()
    cpu = _cpu_draws(cfg, image)
    dev = DeviceAugment(cfg.INPUT)(image.expand(N, -1, -1, -1).contiguous())

    def offsets(out):  # the centre pixel's source gives the crop offset in the padded image
        top = out[:, 0, 12, 6].long() - 1 - 12 + pad
        left = out[:, 1, 12, 6].long() - 1 - 6 + pad
        return top, left

    for cpu_off, dev_off in zip(offsets(cpu), offsets(dev)):
        assert cpu_off.min() >= 0 and cpu_off.max() <= 2 * pad
        hist_cpu = torch.bincount(cpu_off, minlength=2 * pad + 1).double() / N
        hist_dev = torch.bincount(dev_off, minlength=2 * pad + 1).double() / N
        assert dev_off.min() == 0 and dev_off.max() == 2 * pad
        p = 1 / (2 * pad + 1)  # uniform over the 2 * pad + 1 offsets
        sigma = math.sqrt(2 * p * (1 - p) / N)
        assert (hist_cpu - hist_dev).abs().max() < 5 * sigma
        assert (hist_dev - p).abs().max() < 5 * sigma / math.sqrt(2)
    # Same output pixels once the offset is fixed: a crop is a crop.
    top, left = offsets(dev)
    for b in range(20):
        padded = F.pad(image, [pad], padding_mode=mode)
        assert torch.equal(dev[b], F.crop(padded, int(top[b]), int(left[b]), 24, 12))


def _erased_boxes(out: torch.Tensor, value):
    """(erased?, top, left, h, w) of the fill-coloured box in each output of a black image."""
    mask = out[:, 0] == value[0]
    erased = mask.flatten(1).any(1)
    rows, cols = mask.any(2), mask.any(1)
    h, w = rows.sum(1), cols.sum(1)
    top = rows.float().argmax(1)
    left = cols.float().argmax(1)
    return erased, top[erased], left[erased], h[erased], w[erased]


def test_erasing_rate_and_box_statistics_match_the_cpu_path():
    cfg = _cfg(h=32, w=16, REA=dict(ENABLED=True, PROB=0.5))
    value = [round(v) for v in cfg.INPUT.REA.VALUE]
    image = torch.zeros(3, 32, 16, dtype=torch.uint8)
    cpu = _erased_boxes(_cpu_draws(cfg, image), value)
    dev = _erased_boxes(DeviceAugment(cfg.INPUT)(image.expand(N, -1, -1, -1).contiguous()), value)
    rate_cpu, rate_dev = cpu[0].float().mean().item(), dev[0].float().mean().item()
    assert _rates_agree(rate_cpu, rate_dev)
    _, top_c, left_c, h_c, w_c = cpu
    _, top_d, left_d, h_d, w_d = dev
    statistics = {
        "area": (h_c * w_c, h_d * w_d),
        "log aspect": ((h_c / w_c).log(), (h_d / w_d).log()),
        "top": (top_c, top_d),
        "left": (left_c, left_d),
        "height": (h_c, h_d),
    }
    limit = math.sqrt(-math.log(0.5e-4) / 2) * math.sqrt(1 / len(h_c) + 1 / len(h_d))
    for name, (a, b) in statistics.items():
        assert _ks(a, b) < limit, name
    # Boxes stay inside the image and are smaller than it in both directions.
    assert (top_d + h_d <= 32).all() and (left_d + w_d <= 16).all()
    assert (h_d < 32).all() and (w_d < 16).all()


def test_erasing_gives_up_after_ten_attempts_as_often_as_torchvision():
    # On a 10 x 1 image most drawn boxes do not fit (w must round to 0).
    from torchvision.transforms import v2 as T

    reference = T.RandomErasing(p=1.0, value=0)
    image = torch.zeros(3, 10, 1)
    gave_up_cpu = sum(reference.make_params([image])["v"] is None for _ in range(N)) / N
    erase, boxes = sample_erase_boxes(N, 10, 1, 1.0, torch.Generator().manual_seed(0))
    gave_up_dev = 1.0 - erase.float().mean().item()
    assert 0.01 < gave_up_cpu < 0.99 and _rates_agree(gave_up_cpu, gave_up_dev)
    assert (boxes[erase, 2] < 10).all() and (boxes[erase, 3] == 0).all()


def test_color_jitter_rate_and_brightness_factors_match_the_cpu_path():
    cj = dict(ENABLED=True, PROB=0.4, BRIGHTNESS=0.3, CONTRAST=0.0, SATURATION=0.0, HUE=0.0)
    cfg = _cfg(h=8, w=8, CJ=cj)
    image = torch.full((3, 8, 8), 100, dtype=torch.uint8)
    cpu = _cpu_draws(cfg, image)[:, 0, 0, 0].long()
    dev = DeviceAugment(cfg.INPUT)(image.expand(N, -1, -1, -1).contiguous())[:, 0, 0, 0].long()
    changed_cpu, changed_dev = (cpu != 100), (dev != 100)
    # A factor within 1 % of 1 leaves 100 unchanged; both paths share that.
    assert _rates_agree(changed_cpu.float().mean().item(), changed_dev.float().mean().item())
    assert _ks(cpu[changed_cpu], dev[changed_dev]) < KS_LIMIT * 1.5
    assert dev.min() >= 70 and dev.max() <= 130  # factor in [0.7, 1.3]


def test_color_jitter_orders_are_uniform_permutations():
    apply, order, factors = sample_color_jitter(
        2400, 1.0, 0.15, 0.15, 0.1, 0.1, torch.Generator().manual_seed(0)
    )
    assert apply.all()
    assert (order.sort(1).values == torch.arange(4)).all()
    codes = (order * torch.tensor([64, 16, 4, 1])).sum(1)
    counts = torch.unique(codes, return_counts=True)[1].double()
    assert len(counts) == 24 and (counts - 100).abs().max() < 5 * math.sqrt(100)
    low = torch.tensor([0.85, 0.85, 0.9, -0.1])
    high = torch.tensor([1.15, 1.15, 1.1, 0.1])
    assert (factors >= low).all() and (factors <= high).all()
    assert ((factors.mean(0) - (low + high) / 2).abs() < 0.01).all()


# -- the whole recipe -------------------------------------------------------------------------
def test_bot_recipe_keeps_shape_dtype_and_device():
    cfg = get_cfg()
    cfg.merge_from_file("configs/Base-bagtricks.yml")
    cfg.INPUT.SIZE_TRAIN = [32, 16]
    cfg.INPUT.PADDING.SIZE = 3
    images = torch.randint(0, 256, (10, 3, 32, 16), dtype=torch.uint8)
    augment = DeviceAugment(cfg.INPUT)
    out = augment(images)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert set(augment.describe()) == {"pad+crop", "flip", "random erasing"}


def test_per_image_ops_run_and_random_patch_is_refused():
    cfg = _cfg(
        h=32,
        w=16,
        AUTOAUG=dict(ENABLED=True, PROB=1.0),
        CROP=dict(ENABLED=True, SIZE=[16, 8]),
        AFFINE=dict(ENABLED=True),
    )
    images = torch.randint(0, 256, (4, 3, 32, 16), dtype=torch.uint8)
    out = DeviceAugment(cfg.INPUT)(images)
    assert out.shape == (4, 3, 16, 8) and out.dtype == torch.uint8
    with pytest.raises(BadInputError, match="INPUT.RPT"):
        DeviceAugment(_cfg(RPT=dict(ENABLED=True)).INPUT)


def test_autoaugment_changes_as_many_images_as_on_the_cpu_path():
    n = 1500
    cfg = _cfg(h=16, w=8, AUTOAUG=dict(ENABLED=True, PROB=0.3))
    image = torch.randint(0, 256, (3, 16, 8), dtype=torch.uint8)
    cpu = _cpu_draws(cfg, image, n)
    dev = DeviceAugment(cfg.INPUT)(image.expand(n, -1, -1, -1).contiguous())
    changed_cpu = (cpu != image).flatten(1).any(1).float().mean().item()
    changed_dev = (dev != image).flatten(1).any(1).float().mean().item()
    assert 0.1 < changed_dev < 0.3  # applied to 30 %, and some sub-policies keep the image
    assert _rates_agree(changed_cpu, changed_dev, n)
