"""RepVGG (Ding et al.): multi-branch training blocks that fuse into single 3x3 convs."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from fastreid.config import CfgNode

from ..layers.batch_norm import get_norm
from .build import BACKBONE_REGISTRY
from .pretrained import load_backbone_pretrain

__all__ = ["RepVGG", "RepVGGBlock", "build_repvgg_backbone", "REPVGG_VARIANTS"]

_GROUPED_LAYERS = list(range(2, 27, 2))  # odd-numbered convs (1-based) use groups in g2/g4
# name -> (blocks per stage, width multipliers (a, b), groups of the grouped layers)
REPVGG_VARIANTS: Dict[str, Tuple[List[int], Tuple[float, float], int]] = {
    "A0": ([2, 4, 14, 1], (0.75, 2.5), 1),
    "A1": ([2, 4, 14, 1], (1.0, 2.5), 1),
    "A2": ([2, 4, 14, 1], (1.5, 2.75), 1),
    "B0": ([4, 6, 16, 1], (1.0, 2.5), 1),
    "B1": ([4, 6, 16, 1], (2.0, 4.0), 1),
    "B1g2": ([4, 6, 16, 1], (2.0, 4.0), 2),
    "B1g4": ([4, 6, 16, 1], (2.0, 4.0), 4),
    "B2": ([4, 6, 16, 1], (2.5, 5.0), 1),
    "B2g2": ([4, 6, 16, 1], (2.5, 5.0), 2),
    "B2g4": ([4, 6, 16, 1], (2.5, 5.0), 4),
    "B3": ([4, 6, 16, 1], (3.0, 5.0), 1),
    "B3g2": ([4, 6, 16, 1], (3.0, 5.0), 2),
    "B3g4": ([4, 6, 16, 1], (3.0, 5.0), 4),
}


def _conv_norm(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int,
    padding: int,
    groups: int,
    norm: str,
) -> nn.Sequential:
    branch = nn.Sequential()
    branch.add_module(
        "conv",
        nn.Conv2d(in_channels, out_channels, kernel, stride, padding, groups=groups, bias=False),
    )
    branch.add_module("bn", get_norm(norm, out_channels))
    return branch


def _fuse_norm(kernel: torch.Tensor, norm: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold an inference-mode BN into the preceding conv kernel: ``(kernel', bias')``."""
    if not hasattr(norm, "running_var"):
        raise TypeError(
            f"RepVGG fusion needs a BatchNorm-style norm with running statistics, got "
            f"{type(norm).__name__}; use MODEL.BACKBONE.NORM BN / syncBN / GhostBN / FrozenBN."
        )
    std = (norm.running_var + norm.eps).sqrt()
    scale = norm.weight / std
    return kernel * scale.reshape(-1, 1, 1, 1), norm.bias - norm.running_mean * scale


class RepVGGBlock(nn.Module):
    """Training form: ReLU(3x3 conv-BN + 1x1 conv-BN [+ BN identity]); deploy form: ReLU(3x3 conv).

    Names follow the authors' code: ``rbr_dense``, ``rbr_1x1``, ``rbr_identity``, and
    ``rbr_reparam`` once fused. ``(B, in, H, W) -> (B, out, H / stride, W / stride)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        groups: int = 1,
        norm: str = "BN",
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.groups = stride, groups
        self.nonlinearity = nn.ReLU(inplace=True)
        self.rbr_identity: Optional[nn.Module] = (
            get_norm(norm, in_channels) if in_channels == out_channels and stride == 1 else None
        )
        self.rbr_dense = _conv_norm(in_channels, out_channels, 3, stride, 1, groups, norm)
        self.rbr_1x1 = _conv_norm(in_channels, out_channels, 1, stride, 0, groups, norm)
        self.rbr_reparam: Optional[nn.Conv2d] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rbr_reparam is not None:
            return self.nonlinearity(self.rbr_reparam(x))
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.nonlinearity(out)

    @torch.no_grad()
    def equivalent_kernel_bias(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 kernel and bias equal to the three branches in eval mode."""
        kernel, bias = _fuse_norm(self.rbr_dense.conv.weight, self.rbr_dense.bn)
        k1, b1 = _fuse_norm(self.rbr_1x1.conv.weight, self.rbr_1x1.bn)
        kernel = kernel + nn.functional.pad(k1, [1, 1, 1, 1])
        bias = bias + b1
        if self.rbr_identity is not None:
            per_group = self.in_channels // self.groups
            identity = torch.zeros_like(self.rbr_dense.conv.weight)
            for c in range(self.in_channels):
                identity[c, c % per_group, 1, 1] = 1.0
            ki, bi = _fuse_norm(identity, self.rbr_identity)
            kernel, bias = kernel + ki, bias + bi
        return kernel, bias

    def switch_to_deploy(self) -> None:
        """Replace the branches by one 3x3 conv with bias (same outputs in eval mode)."""
        if self.rbr_reparam is not None:
            return
        kernel, bias = self.equivalent_kernel_bias()
        self.rbr_reparam = nn.Conv2d(
            self.in_channels, self.out_channels, 3, self.stride, 1, groups=self.groups, bias=True
        ).to(device=kernel.device, dtype=kernel.dtype)
        self.rbr_reparam.weight.data.copy_(kernel)
        self.rbr_reparam.bias.data.copy_(bias)
        del self.rbr_dense, self.rbr_1x1
        self.rbr_identity = None


class RepVGG(nn.Module):
    """RepVGG trunk. ``(B, 3, H, W) -> (B, feat_dim, H/32*last_stride, W/32*last_stride)``.

    Call :meth:`switch_to_deploy` (after training, in eval mode) for the fused plain-conv form.
    """

    def __init__(
        self,
        num_blocks: List[int],
        width_multiplier: Tuple[float, float],
        group_count: int = 1,
        last_stride: int = 2,
        norm: str = "BN",
    ) -> None:
        super().__init__()
        a, b = width_multiplier
        self.in_planes = min(64, int(64 * a))
        self.group_count = group_count
        self._layer_index = 1
        self.stage0 = RepVGGBlock(3, self.in_planes, stride=2, norm=norm)
        self.stage1 = self._make_stage(int(64 * a), num_blocks[0], 2, norm)
        self.stage2 = self._make_stage(int(128 * a), num_blocks[1], 2, norm)
        self.stage3 = self._make_stage(int(256 * a), num_blocks[2], 2, norm)
        self.stage4 = self._make_stage(int(512 * b), num_blocks[3], last_stride, norm)
        self.feat_dim = int(512 * b)

    def _make_stage(self, planes: int, blocks: int, stride: int, norm: str) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            groups = self.group_count if self._layer_index in _GROUPED_LAYERS else 1
            layers.append(RepVGGBlock(self.in_planes, planes, s, groups, norm))
            self.in_planes = planes
            self._layer_index += 1
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage0(x)
        for stage in (self.stage1, self.stage2, self.stage3, self.stage4):
            x = stage(x)
        return x

    def switch_to_deploy(self) -> RepVGG:
        """Fuse every block in place for inference; returns ``self``."""
        for module in self.modules():
            if isinstance(module, RepVGGBlock):
                module.switch_to_deploy()
        return self


@BACKBONE_REGISTRY.register()
def build_repvgg_backbone(cfg: CfgNode) -> RepVGG:
    """RepVGG from ``MODEL.BACKBONE``: DEPTH A0/A1/A2/B0/B1/B1g2/B1g4/B2/B2g2/B2g4/B3/B3g2/B3g4,
    LAST_STRIDE, NORM, PRETRAIN_PATH (the authors' training-form names).
    FEAT_DIM: A0/A1/B0 1280, A2 1408, B1 2048, B2/B3 2560."""
    bb = cfg.MODEL.BACKBONE
    depth = str(bb.DEPTH)
    if depth not in REPVGG_VARIANTS:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {depth!r} is not a RepVGG variant; choose one of "
            f"{', '.join(REPVGG_VARIANTS)}."
        )
    blocks, widths, groups = REPVGG_VARIANTS[depth]
    model = RepVGG(blocks, widths, groups, bb.LAST_STRIDE, bb.NORM)
    load_backbone_pretrain(
        model, cfg, key_mapper=lambda s: {k: v for k, v in s.items() if not k.startswith("linear.")}
    )
    return model
