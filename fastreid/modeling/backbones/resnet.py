"""ResNet 18/34/50/101/152 (and ResNeXt) with IBN-a, SE, non-local blocks and a last-stride option.

Parameter names follow FastReID's ResNet (itself torchvision's layout plus ``NL_*`` lists), so
FastReID checkpoints and torchvision ImageNet weights load without renaming.
"""

from __future__ import annotations

import math
import re
from typing import Dict, List, Optional, Sequence, Type, Union

import torch
from torch import nn

from fastreid.config import CfgNode

from ..layers.batch_norm import get_norm
from ..layers.ibn import IBN
from ..layers.non_local import NonLocalBlock
from ..layers.se_layer import SELayer
from .build import BACKBONE_REGISTRY
from .pretrained import load_backbone_pretrain

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "build_resnet_backbone",
    "build_resnext_backbone",
    "resnet_key_mapper",
]

BLOCKS_PER_STAGE = {
    "18x": [2, 2, 2, 2],
    "34x": [3, 4, 6, 3],
    "50x": [3, 4, 6, 3],
    "101x": [3, 4, 23, 3],
    "152x": [3, 8, 36, 3],
}
# Non-local blocks per stage, placed after the last blocks of the stage (FastReID / AGW).
NL_BLOCKS_PER_STAGE = {
    "18x": [0, 0, 0, 0],
    "34x": [0, 2, 3, 0],
    "50x": [0, 2, 3, 0],
    "101x": [0, 2, 9, 0],
    "152x": [0, 2, 9, 0],
}


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual (ResNet-18/34). ``(B, in, H, W) -> (B, planes, H/s, W/s)``."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        bn_norm: str = "BN",
        with_ibn: bool = False,
        with_se: bool = False,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        reduction: int = 16,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(
                "BasicBlock supports only groups=1 and base_width=64 (use Bottleneck)."
            )
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = IBN(planes, bn_norm) if with_ibn else get_norm(bn_norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = get_norm(bn_norm, planes)
        self.relu = nn.ReLU(inplace=True)
        self.se = SELayer(planes, reduction) if with_se else nn.Identity()
        self.downsample = downsample
        self.stride = stride

    @property
    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward_pre_relu(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return out + identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.forward_pre_relu(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (grouped for ResNeXt) -> 1x1 residual block. Output ``planes * 4`` channels."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        bn_norm: str = "BN",
        with_ibn: bool = False,
        with_se: bool = False,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        reduction: int = 16,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = IBN(width, bn_norm) if with_ibn else get_norm(bn_norm, width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = get_norm(bn_norm, width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = get_norm(bn_norm, planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = SELayer(planes * self.expansion, reduction) if with_se else nn.Identity()
        self.downsample = downsample
        self.stride = stride

    @property
    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward_pre_relu(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return out + identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.forward_pre_relu(x))


class ResNet(nn.Module):
    """ResNet trunk without the classifier.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage, e.g. ``[3, 4, 6, 3]``.
        last_stride: stride of stage 4 (1 for re-ID: a 16x8 map from 256x128 inputs).
        bn_norm: norm name for ``get_norm`` (BN, syncBN, GhostBN, FrozenBN, GN, IN).
        with_ibn: IBN-a in the first norm of every block of stages 1-3.
        with_se: squeeze-and-excitation in every block.
        non_local: non-local blocks per stage (``NL_1``..``NL_4``), after the last blocks.
        groups, width_per_group: ResNeXt cardinality and width (1, 64 for ResNet).
        nl_inter_channels: inner width of non-local blocks; FastReID's AGW checkpoints use 1.
        ibn_in_stage4: IBN-a in stage 4 as well (FastReID's ResNeXt-IBN has it there).
        torchvision_pool: stem max-pool with padding 1 (torchvision, FastReID's ResNeXt) instead
            of FastReID's ResNet pool (padding 0, rounding up).

    ``forward``: ``(B, 3, H, W) -> (B, feat_dim, H/32*last_stride, W/32*last_stride)``.
    """

    def __init__(
        self,
        block: Type[Union[BasicBlock, Bottleneck]],
        layers: Sequence[int],
        last_stride: int = 1,
        bn_norm: str = "BN",
        with_ibn: bool = False,
        with_se: bool = False,
        non_local: Sequence[int] = (0, 0, 0, 0),
        groups: int = 1,
        width_per_group: int = 64,
        nl_inter_channels: Optional[int] = 1,
        ibn_in_stage4: bool = False,
        torchvision_pool: bool = False,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = get_norm(bn_norm, 64)
        self.relu = nn.ReLU(inplace=True)
        # FastReID pools without padding and rounds up: same output size, different values.
        if torchvision_pool:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, bn_norm, with_ibn, with_se)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, bn_norm, with_ibn, with_se)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, bn_norm, with_ibn, with_se)
        # IBN-a keeps stage 4 purely batch-normalised (ResNet-IBN-a; not FastReID's ResNeXt).
        ibn4 = with_ibn and ibn_in_stage4
        self.layer4 = self._make_layer(block, 512, layers[3], last_stride, bn_norm, ibn4, with_se)
        self.stage_channels: List[int] = [c * block.expansion for c in (64, 128, 256, 512)]
        self.feat_dim: int = self.stage_channels[-1]

        self.nl_positions: List[List[int]] = []
        for i, (count, num_blocks) in enumerate(zip(non_local, layers), start=1):
            if count > num_blocks:
                raise ValueError(
                    f"Stage {i} has {num_blocks} blocks, cannot add {count} NL blocks."
                )
            channels = self.stage_channels[i - 1]
            blocks = [
                NonLocalBlock(channels, bn_norm, inter_channels=nl_inter_channels)
                for _ in range(count)
            ]
            # Empty lists too, as FastReID has them (they hold no parameters).
            setattr(self, f"NL_{i}", nn.ModuleList(blocks))
            # NL block j follows block index num_blocks - count + j (the last ones).
            self.nl_positions.append(sorted(num_blocks - 1 - j for j in range(count)))
        self._random_init()

    def _make_layer(
        self,
        block: Type[Union[BasicBlock, Bottleneck]],
        planes: int,
        blocks: int,
        stride: int,
        bn_norm: str,
        with_ibn: bool,
        with_se: bool,
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                get_norm(bn_norm, planes * block.expansion),
            )
        kwargs = dict(groups=self.groups, base_width=self.base_width)
        layers = [
            block(self.inplanes, planes, bn_norm, with_ibn, with_se, stride, downsample, **kwargs)
        ]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, bn_norm, with_ibn, with_se, **kwargs))
        return nn.Sequential(*layers)

    def _random_init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / n))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Non-local blocks start as the identity.
        for m in self.modules():
            if isinstance(m, NonLocalBlock) and getattr(m.W[1], "weight", None) is not None:
                nn.init.zeros_(m.W[1].weight)
                nn.init.zeros_(m.W[1].bias)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def _run_stage(self, index: int, x: torch.Tensor, pre_relu: bool) -> torch.Tensor:
        stage: nn.Sequential = getattr(self, f"layer{index}")
        nl_blocks = getattr(self, f"NL_{index}")
        positions = self.nl_positions[index - 1]
        last = len(stage) - 1
        for i, block in enumerate(stage):
            ends_stage = i == last and i not in positions
            if pre_relu and ends_stage:
                x = block.forward_pre_relu(x)
            else:
                x = block(x)
            if i in positions:
                x = nl_blocks[positions.index(i)](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, feat_dim, h, w)``."""
        x = self.stem(x)
        for index in range(1, 5):
            x = self._run_stage(index, x, pre_relu=False)
        return x

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The four stage outputs before their final ReLU, ``[(B, stage_channels[i], h_i, w_i)]``.

        The ReLU is then applied to feed the next stage, so the last entry is ``forward(x)``
        without its final ReLU. A stage ending with a non-local block has no final ReLU; its
        output is returned as is.
        """
        x = self.stem(x)
        features = []
        for index in range(1, 5):
            x = self._run_stage(index, x, pre_relu=True)
            features.append(x)
            if self.nl_positions[index - 1][-1:] != [len(getattr(self, f"layer{index}")) - 1]:
                x = torch.relu(x)  # not in place: the pre-ReLU tensor is returned
        return features

    def get_bn_before_relu(self) -> List[nn.Module]:
        """The norm layer feeding each stage's final ReLU (teacher margins in overhaul KD)."""
        return [getattr(self, f"layer{i}")[-1].last_norm for i in range(1, 5)]


def resnet_key_mapper(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map torchvision / IBN-Net ImageNet checkpoints onto :class:`ResNet` names.

    Drops the ImageNet classifier (``fc.*``) and, when the checkpoint has a plain ``bn1`` where
    the model has IBN-a, splits its statistics into ``bn1.IN`` / ``bn1.BN`` halves.
    """
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def _split_bn_into_ibn(model: nn.Module, state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    out = dict(state)
    for name, module in model.named_modules():
        if not isinstance(module, IBN) or f"{name}.IN.weight" in state:
            continue
        if f"{name}.weight" not in state:
            continue
        half = module.half
        for suffix in ("weight", "bias"):
            value = out.pop(f"{name}.{suffix}")
            out[f"{name}.IN.{suffix}"] = value[:half]
            out[f"{name}.BN.{suffix}"] = value[half:]
        for suffix in ("running_mean", "running_var"):
            if f"{name}.{suffix}" in out:
                out[f"{name}.BN.{suffix}"] = out.pop(f"{name}.{suffix}")[half:]
        out.pop(f"{name}.num_batches_tracked", None)
    return out


def imagenet_weights_key(depth: str, with_ibn: bool, groups: int = 1, width: int = 64) -> str:
    """The :data:`~fastreid.modeling.backbones.pretrained.IMAGENET_WEIGHTS` key of a ResNet
    (``resnet50``, ``resnet50_ibn_a``, ``resnext101_32x8d``). SE and non-local blocks have no
    ImageNet weights of their own: they keep their init, the rest loads."""
    number = depth.rstrip("x")
    if groups > 1:
        return f"resnext{number}_{groups}x{width}d" + ("_ibn_a" if with_ibn else "")
    return f"resnet{number}" + ("_ibn_a" if with_ibn else "")


def _load_pretrain(model: nn.Module, cfg: CfgNode, imagenet: Optional[str] = None) -> None:
    """``PRETRAIN`` / ``PRETRAIN_PATH`` for a torchvision-named ResNet; ``imagenet`` defaults to
    the plain ResNet of ``DEPTH`` / ``WITH_IBN`` (FastDistill's ResNet uses the same files)."""
    if imagenet is None:
        bb = cfg.MODEL.BACKBONE
        imagenet = imagenet_weights_key(str(bb.DEPTH), bool(bb.WITH_IBN))
    load_backbone_pretrain(
        model,
        cfg,
        key_mapper=lambda s: _split_bn_into_ibn(model, resnet_key_mapper(s)),
        imagenet=imagenet,
    )


def _parse_depth(depth: str, choices: Dict[str, object], key: str = "MODEL.BACKBONE.DEPTH") -> str:
    depth = str(depth)
    if depth not in choices:
        raise KeyError(
            f"{key} {depth!r} is not supported here; choose one of {', '.join(choices)}."
        )
    return depth


@BACKBONE_REGISTRY.register()
def build_resnet_backbone(cfg: CfgNode) -> ResNet:
    """ResNet from ``MODEL.BACKBONE``: DEPTH 18x/34x/50x/101x/152x, LAST_STRIDE, NORM, WITH_IBN,
    WITH_SE, WITH_NL, PRETRAIN / PRETRAIN_PATH."""
    bb = cfg.MODEL.BACKBONE
    depth = _parse_depth(bb.DEPTH, BLOCKS_PER_STAGE)
    block = BasicBlock if depth in ("18x", "34x") else Bottleneck
    model = ResNet(
        block,
        BLOCKS_PER_STAGE[depth],
        last_stride=bb.LAST_STRIDE,
        bn_norm=bb.NORM,
        with_ibn=bb.WITH_IBN,
        with_se=bb.WITH_SE,
        non_local=NL_BLOCKS_PER_STAGE[depth] if bb.WITH_NL else (0, 0, 0, 0),
    )
    _load_pretrain(model, cfg, imagenet_weights_key(depth, bb.WITH_IBN))
    return model


_RESNEXT_DEPTH = re.compile(r"^(\d+x)(?:_(\d+)x(\d+)d)?$")
# FastReID's ResNeXt is 32x4d at every depth (torchvision's resnext101_32x8d: "101x_32x8d").
_RESNEXT_DEFAULT = {"50x": (32, 4), "101x": (32, 4), "152x": (32, 4)}


@BACKBONE_REGISTRY.register()
def build_resnext_backbone(cfg: CfgNode) -> ResNet:
    """FastReID's ResNeXt from ``MODEL.BACKBONE``: DEPTH 50x/101x/152x (32x4d) or an explicit
    ``"101x_32x8d"``; WITH_IBN (IBN-a in stages 1-4, as FastReID) / WITH_SE / WITH_NL /
    LAST_STRIDE / NORM as for ResNet. Names match torchvision's ``resnext*`` so its ImageNet
    weights load."""
    bb = cfg.MODEL.BACKBONE
    match = _RESNEXT_DEPTH.match(str(bb.DEPTH))
    if not match or match.group(1) not in _RESNEXT_DEFAULT:
        raise KeyError(
            f"MODEL.BACKBONE.DEPTH {bb.DEPTH!r} is not a ResNeXt depth; use 50x, 101x, 152x or "
            "a form like '101x_32x4d'."
        )
    depth = match.group(1)
    groups, width = _RESNEXT_DEFAULT[depth]
    if match.group(2):
        groups, width = int(match.group(2)), int(match.group(3))
    model = ResNet(
        Bottleneck,
        BLOCKS_PER_STAGE[depth],
        last_stride=bb.LAST_STRIDE,
        bn_norm=bb.NORM,
        with_ibn=bb.WITH_IBN,
        with_se=bb.WITH_SE,
        non_local=NL_BLOCKS_PER_STAGE[depth] if bb.WITH_NL else (0, 0, 0, 0),
        groups=groups,
        width_per_group=width,
        ibn_in_stage4=True,
        torchvision_pool=True,
    )
    _load_pretrain(model, cfg, imagenet_weights_key(depth, bb.WITH_IBN, groups, width))
    return model
