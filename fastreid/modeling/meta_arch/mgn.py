"""MGN: Multiple Granularity Network (Wang et al. 2018) on a ResNet, FastReID's layout."""

from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from fastreid.config import CfgNode, configurable
from fastreid.modeling.backbones.build import build_backbone
from fastreid.modeling.heads.build import build_heads
from fastreid.modeling.losses import cross_entropy_loss, triplet_loss
from fastreid.utils.precision_bn import in_bn_statistics_pass

from .baseline import BatchedInputs, ImageNormalizer, check_loss_names, loss_kwargs_from_config
from .build import META_ARCH_REGISTRY

__all__ = ["MGN", "split_resnet_for_mgn"]

_RESNET_PARTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
# Eval feature order: global features first, then the parts (FastReID's order).
_HEAD_ORDER = ("b1", "b2", "b3", "b21", "b22", "b31", "b32", "b33")


def split_resnet_for_mgn(resnet: nn.Module) -> Tuple[nn.Sequential, nn.Sequential, nn.Sequential]:
    """Cut a ResNet into MGN's shared trunk and the two kinds of branch.

    Returns ``(trunk, global_branch, part_branch)``: the trunk is stem + layer1 + layer2 +
    ``layer3[0]``; the global branch is ``layer3[1:]`` + ``layer4``; the part branch is
    ``layer3[1:]`` + ``layer4`` with every stride set to 1 (same weights). The branches are
    deep copies: each MGN branch gets its own weights.
    """
    missing = [name for name in _RESNET_PARTS if not hasattr(resnet, name)]
    if missing:
        raise TypeError(
            f"MGN needs a ResNet-style backbone with {', '.join(_RESNET_PARTS)}; "
            f"{type(resnet).__name__} lacks {', '.join(missing)}. Use "
            "MODEL.BACKBONE.NAME build_resnet_backbone."
        )
    trunk = nn.Sequential(
        resnet.conv1,
        resnet.bn1,
        resnet.relu,
        resnet.maxpool,
        resnet.layer1,
        resnet.layer2,
        resnet.layer3[0],
    )
    res_conv4 = nn.Sequential(*list(resnet.layer3.children())[1:])
    global_branch = nn.Sequential(copy.deepcopy(res_conv4), copy.deepcopy(resnet.layer4))
    part_conv5 = copy.deepcopy(resnet.layer4)
    for module in part_conv5.modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)
        elif isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)) and module.stride not in (1, (1, 1)):
            module.stride = 1
            module.kernel_size = 1
    part_branch = nn.Sequential(copy.deepcopy(res_conv4), part_conv5)
    return trunk, global_branch, part_branch


@META_ARCH_REGISTRY.register()
class MGN(ImageNormalizer):
    """Global branch ``b1``, 2-part branch ``b2`` and 3-part branch ``b3`` over a ResNet trunk.

    Modules (FastReID's names): ``backbone`` (shared trunk), ``b1``/``b2``/``b3`` (branch
    layers), heads ``b1_head``, ``b2_head``, ``b21_head``, ``b22_head``, ``b3_head``,
    ``b31_head``, ``b32_head``, ``b33_head``. Part heads see horizontal stripes of the branch
    feature map (``torch.chunk`` along the height, so it needs height >= 3).

    * training -> losses: CE on every head (weight 1/8 each, names ``loss_cls_<head>``), triplet
      on the global features of ``b1``, ``b2``, ``b3`` and on the concatenated part features of
      ``b2`` and ``b3`` (weight 1/5 each, ``loss_triplet_b1/b2/b3/b22/b33``), both times their
      ``SCALE``.
    * eval -> concatenation of the 8 head features in the order b1, b2, b3, b21, b22, b31, b32,
      b33: ``(B, 8 * D)``.
    """

    supported_losses = ("CrossEntropyLoss", "TripletLoss")

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        neck1: nn.Module,
        neck2: nn.Module,
        neck3: nn.Module,
        heads: Dict[str, nn.Module],
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        loss_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(pixel_mean, pixel_std)
        missing = [h for h in _HEAD_ORDER if h not in heads]
        if missing:
            raise ValueError(f"MGN needs heads {', '.join(_HEAD_ORDER)}; missing {missing}.")
        self.backbone = backbone
        self.b1 = neck1
        self.b1_head = heads["b1"]
        self.b2 = neck2
        self.b2_head = heads["b2"]
        self.b21_head = heads["b21"]
        self.b22_head = heads["b22"]
        self.b3 = neck3
        self.b3_head = heads["b3"]
        self.b31_head = heads["b31"]
        self.b32_head = heads["b32"]
        self.b33_head = heads["b33"]
        self.loss_kwargs = loss_kwargs or {"loss_names": ("CrossEntropyLoss",), "ce": {}}
        check_loss_names(self.loss_kwargs.get("loss_names", ()), self.supported_losses)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        trunk, global_branch, part_branch = split_resnet_for_mgn(build_backbone(cfg))
        return {
            "backbone": trunk,
            "neck1": global_branch,
            "neck2": part_branch,
            "neck3": copy.deepcopy(part_branch),
            "heads": {name: build_heads(cfg) for name in _HEAD_ORDER},
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "loss_kwargs": loss_kwargs_from_config(cfg),
        }

    def branch_features(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Feature maps for each head: ``{"b1": (B, C, h, w), "b21": (B, C, h/2, w), ...}``."""
        shared = self.backbone(images)
        b1 = self.b1(shared)
        b2 = self.b2(shared)
        b3 = self.b3(shared)
        if b3.size(2) < 3:
            raise ValueError(
                f"MGN splits the feature map into 3 horizontal stripes but its height is "
                f"{b3.size(2)}; use taller inputs (INPUT.SIZE_TRAIN / SIZE_TEST)."
            )
        b21, b22 = torch.chunk(b2, 2, dim=2)
        b31, b32, b33 = torch.chunk(b3, 3, dim=2)
        return {
            "b1": b1,
            "b2": b2,
            "b3": b3,
            "b21": b21,
            "b22": b22,
            "b31": b31,
            "b32": b32,
            "b33": b33,
        }

    def forward(
        self, batched_inputs: BatchedInputs
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        images = self.preprocess_image(batched_inputs)
        feats = self.branch_features(images)
        if not self.training:
            return torch.cat([getattr(self, f"{n}_head")(feats[n]) for n in _HEAD_ORDER], dim=1)
        targets = self.get_targets(batched_inputs)
        outputs = {n: getattr(self, f"{n}_head")(feats[n], targets) for n in _HEAD_ORDER}
        if in_bn_statistics_pass():
            return {}
        return self.losses(
            outputs, targets, **self.extra_loss_inputs(batched_inputs, images, outputs)
        )

    def losses(
        self,
        outputs: Dict[str, Dict[str, torch.Tensor]],
        gt_labels: torch.Tensor,
        **extra: Any,
    ) -> Dict[str, torch.Tensor]:
        """``outputs``: head name (``b1``, ``b21``, ...) -> that head's training dict;
        ``extra``: what :meth:`extra_loss_inputs` returned (unused here)."""
        names = self.loss_kwargs["loss_names"]
        loss_dict: Dict[str, torch.Tensor] = {}
        if "CrossEntropyLoss" in names:
            kw = self.loss_kwargs.get("ce", {})
            scale = kw.get("scale", 1.0) * 0.125
            for n in ("b1", "b2", "b21", "b22", "b3", "b31", "b32", "b33"):
                loss_dict[f"loss_cls_{n}"] = (
                    cross_entropy_loss(
                        outputs[n]["cls_outputs"],
                        gt_labels,
                        kw.get("eps", 0.0),
                        kw.get("alpha", 0.2),
                    )
                    * scale
                )
        if "TripletLoss" in names:
            kw = self.loss_kwargs["tri"]
            feats = {n: outputs[n]["features"] for n in ("b1", "b2", "b3")}
            feats["b22"] = torch.cat([outputs["b21"]["features"], outputs["b22"]["features"]], 1)
            feats["b33"] = torch.cat(
                [
                    outputs["b31"]["features"],
                    outputs["b32"]["features"],
                    outputs["b33"]["features"],
                ],
                1,
            )
            scale = kw.get("scale", 1.0) * 0.2
            for n in ("b1", "b2", "b3", "b22", "b33"):
                loss_dict[f"loss_triplet_{n}"] = (
                    triplet_loss(
                        feats[n], gt_labels, kw["margin"], kw["norm_feat"], kw["hard_mining"]
                    )
                    * scale
                )
        return loss_dict
