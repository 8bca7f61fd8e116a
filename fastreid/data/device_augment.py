"""The training augmentation of ``INPUT.*`` applied to whole uint8 batches on any device.

:class:`DeviceAugment` draws every random parameter of a batch at once on the CPU (the global
torch generator, which checkpoints save and ``--resume`` restores) and applies the ops to the
batch on its device (CUDA or the CPU) with batched tensor code: one kernel per op per batch
instead of one Python call per image. Each op draws from the same distribution as the CPU
path's transform (:func:`fastreid.data.transforms.build_transforms`) and computes the same
pixels:

* pad + random crop (``INPUT.PADDING``): same offsets (uniform over the padded image), the four
  padding modes (constant 0, edge, reflect, symmetric);
* horizontal flip (``INPUT.FLIP``);
* colour jitter (``INPUT.CJ``): applied with ``CJ.PROB``; brightness, contrast, saturation and
  hue factors uniform in the same ranges, the four ops in a random order per image, uint8
  rounding after each op as torchvision does;
* random erasing (``INPUT.REA``): the same area (0.02-0.33) and log-uniform aspect (0.3-3.3)
  with up to 10 attempts, the fill rounded as on the uint8 CPU path.

Ops without a batched form run per image on the device with the CPU path's own torchvision
transform (same distribution, one call per image): random resized crop (``INPUT.CROP``), affine
(``INPUT.AFFINE``), AugMix (``INPUT.AUGMIX``) and AutoAugment (``INPUT.AUTOAUG``). AutoAugment
is the one difference in order: the CPU path applies it before the resize, at the source
resolution; here images are cached already resized, so it runs after the resize.
Random patch (``INPUT.RPT``) keeps a pool of patches from earlier images on the host and is
refused with a message.
"""

from __future__ import annotations

import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torchvision.transforms import v2 as T

from fastreid.utils.errors import BadInputError

__all__ = [
    "DeviceAugment",
    "color_jitter_batch",
    "erase_batch",
    "flip_batch",
    "pad_crop_batch",
    "sample_color_jitter",
    "sample_erase_boxes",
]

logger = logging.getLogger(__name__)

PADDING_MODES = ("constant", "edge", "reflect", "symmetric")
# torchvision RandomErasing's defaults, which the CPU path uses.
ERASE_SCALE = (0.02, 0.33)
ERASE_RATIO = (0.3, 3.3)
ERASE_ATTEMPTS = 10
# Colour jitter op ids, in torchvision's numbering.
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


# -- deterministic batched ops --------------------------------------------------------------
def flip_batch(images: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror the images ``(B, C, H, W)`` whose ``flip`` (bool ``(B,)``, on the CPU) is True."""
    chosen = torch.nonzero(flip.cpu()).flatten().to(images.device, non_blocking=True)
    out = images.clone()
    out.index_copy_(0, chosen, images.index_select(0, chosen).flip(-1))
    return out


def _source_index(coords: torch.Tensor, size: int, mode: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Source pixel of each padded-image coordinate (shifted so 0 is the first real pixel),
    and whether it is a real pixel (False only for constant padding)."""
    if mode == "constant":
        inside = (coords >= 0) & (coords < size)
        return coords.clamp(0, size - 1), inside
    if mode == "edge":
        source = coords.clamp(0, size - 1)
    elif mode == "reflect":  # ... 2 1 | 0 1 2 ... (the edge pixel is not repeated)
        period = max(2 * (size - 1), 1)
        source = coords.remainder(period)
        source = torch.where(source >= size, period - source, source)
    elif mode == "symmetric":  # ... 1 0 | 0 1 ... (the edge pixel is repeated)
        period = 2 * size
        source = coords.remainder(period)
        source = torch.where(source >= size, period - 1 - source, source)
    else:
        raise ValueError(f"padding mode must be one of {PADDING_MODES}, got {mode!r}")
    return source, torch.ones_like(coords, dtype=torch.bool)


def pad_crop_batch(
    images: torch.Tensor,
    padding: int,
    mode: str,
    top: torch.Tensor,
    left: torch.Tensor,
    size: Tuple[int, int],
) -> torch.Tensor:
    """Pad every image by ``padding`` on each side (``mode`` as torchvision's ``pad``; the
    constant fill is 0) and crop ``size`` at ``(top[b], left[b])`` of the padded image.

    Whole-batch gathers; the padded images are never materialised.
    """
    batch, _, height, width = images.shape
    out_h, out_w = size
    device = images.device
    rows = top.to(device).view(-1, 1) + torch.arange(out_h, device=device) - padding
    cols = left.to(device).view(-1, 1) + torch.arange(out_w, device=device) - padding
    rows, row_ok = _source_index(rows, height, mode)
    cols, col_ok = _source_index(cols, width, mode)
    channels = images.shape[1]
    # Two gathers (rows, then columns), each with a broadcast index.
    out = images.gather(2, rows.view(batch, 1, out_h, 1).expand(batch, channels, out_h, width))
    out = out.gather(3, cols.view(batch, 1, 1, out_w).expand(batch, channels, out_h, out_w))
    if mode == "constant":
        inside = (row_ok[:, None, :, None] & col_ok[:, None, None, :]).to(out.dtype)
        out = out * inside
    return out


def erase_batch(
    images: torch.Tensor,
    erase: torch.Tensor,
    boxes: torch.Tensor,
    value: Sequence[float],
) -> torch.Tensor:
    """Fill box ``boxes[b] = (top, left, height, width)`` with ``value`` (one per channel)
    in the images whose ``erase`` is True."""
    _, channels, height, width = images.shape
    device = images.device
    boxes = boxes.to(device)
    top, left, h, w = (boxes[:, k].view(-1, 1, 1) for k in range(4))
    ys = torch.arange(height, device=device).view(1, -1, 1)
    xs = torch.arange(width, device=device).view(1, 1, -1)
    mask = (ys >= top) & (ys < top + h) & (xs >= left) & (xs < left + w)
    mask = (mask & erase.to(device).view(-1, 1, 1)).unsqueeze(1)
    fill = torch.tensor(list(value), dtype=images.dtype, device=device).view(1, channels, 1, 1)
    return torch.where(mask, fill, images)


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``(B, 1, H, W)`` in float (torchvision's weights)."""
    r, g, b = images.float().unbind(1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``factor * images + (1 - factor) * other`` clamped to 0-255, truncated to uint8."""
    alpha = (1.0 - factor.double()).float().view(-1, 1, 1, 1)  # as torchvision's float alpha
    out = torch.addcmul(images.float() * factor.view(-1, 1, 1, 1), other, alpha)
    return out.clamp_(0, 255).to(torch.uint8)


def _rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> HSV, hue in [0, 1)."""
    r, g, b = rgb.unbind(1)
    maxc, _ = rgb.max(1)
    minc, _ = rgb.min(1)
    delta = maxc - minc
    gray = delta == 0
    safe = torch.where(gray, torch.ones_like(delta), delta)
    sat = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    hue = torch.where(
        maxc == r,
        (g - b) / safe,
        torch.where(maxc == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe),
    )
    hue = torch.where(gray, torch.zeros_like(hue), hue)
    hue = (hue / 6.0).remainder(1.0)
    return torch.stack((hue, sat, maxc), 1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_rgb_to_hsv`."""
    hue, sat, val = hsv.unbind(1)
    h6 = hue * 6.0
    sector = torch.floor(h6)
    frac = h6 - sector
    sector = sector.long().remainder(6)
    p = (val * (1.0 - sat)).clamp(0, 1)
    q = (val * (1.0 - sat * frac)).clamp(0, 1)
    t = (val * (1.0 - sat * (1.0 - frac))).clamp(0, 1)
    # Per sector: (r, g, b) from (v, p, q, t).
    table = torch.tensor(
        [[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]], device=hsv.device
    )
    choices = torch.stack((val, p, q, t), 1)  # (B, 4, H, W)
    index = table[sector].permute(0, 3, 1, 2)  # (B, 3, H, W)
    return choices.gather(1, index)


def _adjust(images: torch.Tensor, op: int, factor: torch.Tensor) -> torch.Tensor:
    """One colour-jitter op with per-image factors on uint8 images (uint8 out)."""
    if op == BRIGHTNESS:
        return (images.float() * factor.view(-1, 1, 1, 1)).clamp_(0, 255).to(torch.uint8)
    if op == CONTRAST:
        mean = _grayscale(images).floor_().mean(dim=(1, 2, 3), keepdim=True)
        return _blend(images, mean, factor)
    if op == SATURATION:
        return _blend(images, _grayscale(images).floor_(), factor)
    hsv = _rgb_to_hsv(images.float() / 255.0)
    hue = (hsv[:, 0] + factor.view(-1, 1, 1)).remainder(1.0)
    rgb = _hsv_to_rgb(torch.cat((hue.unsqueeze(1), hsv[:, 1:]), 1))
    return (rgb * (256.0 - 1e-3)).to(torch.uint8)  # torchvision's float -> uint8 scaling


def color_jitter_batch(
    images: torch.Tensor,
    apply: torch.Tensor,
    order: torch.Tensor,
    factors: torch.Tensor,
    enabled: Sequence[bool] = (True, True, True, True),
) -> torch.Tensor:
    """Colour jitter per image: image ``b`` (if ``apply[b]``) goes through the ops
    ``order[b]`` (a permutation of brightness, contrast, saturation, hue) with ``factors[b]``
    (4 values in that op numbering). ``apply``/``order`` are CPU tensors, so choosing the
    images of each op needs no device sync; ops not ``enabled`` are skipped as torchvision
    skips a zero-width range."""
    images = images.clone()
    device = images.device
    factors = factors.to(device)
    for step in range(4):
        for op in range(4):
            if not enabled[op]:
                continue
            chosen = torch.nonzero(apply & (order[:, step] == op)).flatten()
            if chosen.numel() == 0:
                continue
            chosen_dev = chosen.to(device, non_blocking=True)
            subset = images.index_select(0, chosen_dev)
            images.index_copy_(0, chosen_dev, _adjust(subset, op, factors[chosen_dev, op]))
    return images


# -- random parameters (drawn on the CPU) ---------------------------------------------------
def sample_erase_boxes(
    n: int,
    height: int,
    width: int,
    prob: float,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(erase (n,) bool, boxes (n, 4) int64 top/left/height/width) as torchvision's
    ``RandomErasing(p=prob)``: up to 10 attempts of area uniform in 2-33 % of the image and
    log-uniform aspect in 0.3-3.3; no erasing when no attempt fits."""
    apply = torch.rand(n, generator=generator) < prob
    area = (
        height * width * torch.empty(n, ERASE_ATTEMPTS).uniform_(*ERASE_SCALE, generator=generator)
    )
    log_ratio = torch.empty(n, ERASE_ATTEMPTS).uniform_(
        math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1]), generator=generator
    )
    aspect = log_ratio.exp()
    # float64 and round-half-even as Python's round() in torchvision.
    h = torch.round(torch.sqrt(area.double() * aspect.double())).long()
    w = torch.round(torch.sqrt(area.double() / aspect.double())).long()
    fits = (h < height) & (w < width)
    first = fits.long().argmax(1)  # first attempt that fits (0 if none; masked below)
    pick = first.view(-1, 1)
    h, w = h.gather(1, pick).flatten(), w.gather(1, pick).flatten()
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    top = (u[:, 0] * (height - h + 1)).floor().long().clamp(max=height - 1)
    left = (u[:, 1] * (width - w + 1)).floor().long().clamp(max=width - 1)
    erase = apply & fits.any(1)
    return erase, torch.stack((top, left, h, w), 1)


def _jitter_range(value: float, center: float, lower: float) -> Tuple[float, float]:
    return max(lower, center - value), center + value


def sample_color_jitter(
    n: int,
    prob: float,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(apply (n,) bool, order (n, 4) permutations, factors (n, 4)) as
    ``RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p=prob)``."""
    apply = torch.rand(n, generator=generator) < prob
    order = torch.rand(n, 4, generator=generator).argsort(1)
    ranges = [
        _jitter_range(brightness, 1.0, 0.0),
        _jitter_range(contrast, 1.0, 0.0),
        _jitter_range(saturation, 1.0, 0.0),
        (-hue, hue),
    ]
    u = torch.rand(n, 4, generator=generator)
    low = torch.tensor([r[0] for r in ranges])
    high = torch.tensor([r[1] for r in ranges])
    return apply, order, low + u * (high - low)


# -- the recipe -----------------------------------------------------------------------------
def _hw(size: Sequence[int]) -> Tuple[int, int]:
    return (int(size[0]), int(size[0])) if len(size) == 1 else (int(size[0]), int(size[1]))


class DeviceAugment:
    """The train transform of ``cfg.INPUT`` (after the resize) on uint8 batches.

    Args:
        cfg_input: the ``INPUT`` node.
        generator: CPU generator of the random parameters (default: torch's global one).

    ``augment(images)`` takes uint8 ``(B, 3, H, W)`` at ``INPUT.SIZE_TRAIN`` on any device and
    returns uint8 ``(B, 3, h, w)`` on the same device (``h, w`` = ``CROP.SIZE`` when the random
    resized crop is on).
    """

    def __init__(self, cfg_input, generator: Optional[torch.Generator] = None) -> None:
        c = cfg_input
        if c.RPT.ENABLED:
            raise BadInputError(
                "INPUT.RPT (random patch) keeps a pool of patches from earlier images on the "
                "host and has no device version; set INPUT.RPT.ENABLED False or "
                "DATALOADER.CACHE.ENABLED False."
            )
        if c.PADDING.ENABLED and c.PADDING.MODE not in PADDING_MODES:
            raise BadInputError(
                f"INPUT.PADDING.MODE {c.PADDING.MODE!r} is not one of {', '.join(PADDING_MODES)}."
            )
        self.cfg = c
        self.generator = generator
        # Per-image ops: (the CPU path's own torchvision transform, probability of applying it).
        self.per_image_first: List[Tuple[T.Transform, float]] = []
        if c.AUTOAUG.ENABLED and c.AUTOAUG.PROB > 0:
            logger.info(
                "Device data path: AutoAugment runs after the resize to INPUT.SIZE_TRAIN "
                "(the CPU path runs it before), one image at a time."
            )
            self.per_image_first.append(
                (T.AutoAugment(T.AutoAugmentPolicy.IMAGENET), float(c.AUTOAUG.PROB))
            )
        if c.CROP.ENABLED:
            self.per_image_first.append(
                (
                    T.RandomResizedCrop(
                        _hw(c.CROP.SIZE),
                        scale=tuple(c.CROP.SCALE),
                        ratio=tuple(c.CROP.RATIO),
                        interpolation=T.InterpolationMode.BICUBIC,
                        antialias=True,
                    ),
                    1.0,
                )
            )
        self.per_image_after: List[Tuple[T.Transform, float]] = []
        if c.AFFINE.ENABLED:
            self.per_image_after.append(
                (T.RandomAffine(degrees=10, scale=(0.9, 1.1), shear=0.1, fill=0), 1.0)
            )
        if c.AUGMIX.ENABLED and c.AUGMIX.PROB > 0:
            self.per_image_after.append((T.AugMix(), float(c.AUGMIX.PROB)))
        self.crop_size: Optional[Tuple[int, int]] = None
        if c.PADDING.ENABLED:
            self.crop_size = _hw(c.CROP.SIZE if c.CROP.ENABLED else c.SIZE_TRAIN)
        jitter = (c.CJ.BRIGHTNESS, c.CJ.CONTRAST, c.CJ.SATURATION, c.CJ.HUE)
        self.jitter_enabled = [float(v) > 0 for v in jitter]
        self.erase_value = [round(float(v)) for v in c.REA.VALUE]

    def describe(self) -> Dict[str, str]:
        """Which op runs how (batched / per image), for logs and benchmark tables."""
        c = self.cfg
        ops: Dict[str, str] = {}
        for transform, _ in self.per_image_first + self.per_image_after:
            ops[type(transform).__name__] = "per image"
        if c.PADDING.ENABLED:
            ops["pad+crop"] = "batched"
        if c.FLIP.ENABLED:
            ops["flip"] = "batched"
        if c.CJ.ENABLED:
            ops["color jitter"] = "batched"
        if c.REA.ENABLED:
            ops["random erasing"] = "batched"
        return ops

    def _per_image(
        self, images: torch.Tensor, steps: List[Tuple[T.Transform, float]]
    ) -> torch.Tensor:
        """Each op on the images it is drawn for (``RandomApply``'s rule), one at a time."""
        for transform, prob in steps:
            chosen = (torch.rand(images.shape[0], generator=self.generator) < prob).tolist()
            if not any(chosen):
                continue
            outputs = [transform(img) if pick else img for img, pick in zip(images, chosen)]
            if any(out.shape != outputs[0].shape for out in outputs):
                raise BadInputError(
                    f"{type(transform).__name__} changes the image size for only some images; "
                    "set INPUT.SIZE_TRAIN to the crop size or turn one of them off."
                )
            images = torch.stack(outputs)
        return images

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"expected uint8 (B, 3, H, W) images, got {images.dtype} {tuple(images.shape)}"
            )
        c, gen = self.cfg, self.generator
        n = images.shape[0]
        images = self._per_image(images, self.per_image_first)
        if self.crop_size is not None:
            pad = int(c.PADDING.SIZE)
            span_h = images.shape[2] + 2 * pad - self.crop_size[0] + 1
            span_w = images.shape[3] + 2 * pad - self.crop_size[1] + 1
            if span_h < 1 or span_w < 1:
                raise BadInputError(
                    f"The crop {self.crop_size} is larger than the padded image "
                    f"{tuple(images.shape[2:])} + {pad}; check INPUT.PADDING.SIZE / CROP.SIZE."
                )
            u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
            top = (u[:, 0] * span_h).floor().long()
            left = (u[:, 1] * span_w).floor().long()
            images = pad_crop_batch(images, pad, c.PADDING.MODE, top, left, self.crop_size)
        if c.FLIP.ENABLED:
            flip = torch.rand(n, generator=gen) < c.FLIP.PROB
            images = flip_batch(images, flip)
        if c.CJ.ENABLED:
            apply, order, factors = sample_color_jitter(
                n, c.CJ.PROB, c.CJ.BRIGHTNESS, c.CJ.CONTRAST, c.CJ.SATURATION, c.CJ.HUE, gen
            )
            images = color_jitter_batch(images, apply, order, factors, self.jitter_enabled)
        images = self._per_image(images, self.per_image_after)
        if c.REA.ENABLED:
            erase, boxes = sample_erase_boxes(n, images.shape[2], images.shape[3], c.REA.PROB, gen)
            images = erase_batch(images, erase, boxes, self.erase_value)
        return images
