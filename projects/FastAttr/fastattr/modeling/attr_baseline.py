"""AttrBaseline: Baseline whose only loss is the (weighted) BCE over attribute vectors."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from fastreid.config import CfgNode, configurable
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY, Baseline

from ..config import BCE_NORMALIZATIONS
from .bce_loss import weighted_bce_loss

__all__ = ["AttrBaseline"]


@META_ARCH_REGISTRY.register()
class AttrBaseline(Baseline):
    """Backbone + :class:`AttrHead`, trained with ``loss_bce`` on ``(B, num_attributes)`` 0/1
    targets; in eval it returns attribute probabilities ``(B, num_attributes)``.

    ``positive_ratios`` (a non-persistent buffer, ``None`` until set) holds the training set's
    per-attribute positive ratios; :meth:`set_positive_ratios` sets it (the trainer does, from
    the training data, when ``MODEL.LOSSES.BCE.WEIGHT_ENABLED``). It follows ``.to(device)``
    and is recomputed from the data at every start rather than stored in checkpoints.
    """

    supported_losses = ("BinaryCrossEntropyLoss",)

    @configurable
    def __init__(self, *, bce: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        if not kwargs.get("loss_kwargs"):
            kwargs["loss_kwargs"] = {"loss_names": self.supported_losses}
        super().__init__(**kwargs)
        self.bce = {"weight_enabled": True, "scale": 1.0, "norm": "nonzero_mean", **(bce or {})}
        if self.bce["norm"] not in BCE_NORMALIZATIONS:
            raise ValueError(
                f"Unknown MODEL.LOSSES.BCE.NORM '{self.bce['norm']}'; choose one of "
                f"{', '.join(BCE_NORMALIZATIONS)}."
            )
        self.register_buffer("positive_ratios", None, persistent=False)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        args = super().from_config(cfg)
        bce = cfg.MODEL.LOSSES.BCE
        args["bce"] = {
            "weight_enabled": bce.WEIGHT_ENABLED,
            "scale": bce.SCALE,
            "norm": bce.NORM,
        }
        return args

    @property
    def num_attributes(self) -> int:
        return int(self.heads.num_classes)

    def set_positive_ratios(self, ratios: Sequence[float]) -> None:
        """Per-attribute positive ratios of the training set, ``(num_attributes,)``."""
        ratios = torch.as_tensor(ratios, dtype=torch.float32, device=self.device).reshape(-1)
        if ratios.numel() != self.num_attributes:
            raise ValueError(
                f"{ratios.numel()} positive ratios for a head with MODEL.HEADS.NUM_CLASSES="
                f"{self.num_attributes} attributes."
            )
        self.positive_ratios = ratios

    def get_targets(self, batched_inputs: Any) -> torch.Tensor:
        """Attribute targets ``(B, num_attributes)`` float on the model's device."""
        if not isinstance(batched_inputs, Mapping) or "targets" not in batched_inputs:
            raise ValueError(
                "AttrBaseline trains on batch dicts with 'targets' (attribute vectors); call "
                "model.eval() to predict from images alone."
            )
        targets = batched_inputs["targets"]
        if targets.dim() != 2 or targets.shape[1] != self.num_attributes:
            raise ValueError(
                f"AttrBaseline needs attribute vectors (B, {self.num_attributes}) as targets, got "
                f"shape {tuple(targets.shape)}: train it on an attribute dataset "
                "(PA100K, Market1501Attr, DukeMTMCAttr, SyntheticAttr) and set "
                "MODEL.HEADS.NUM_CLASSES to its attribute count (or 0 to fill it in)."
            )
        return targets.to(self.device, dtype=torch.float32, non_blocking=True)

    def losses(
        self, outputs: Dict[str, torch.Tensor], gt_labels: torch.Tensor, **extra: Any
    ) -> Dict[str, torch.Tensor]:
        """``{"loss_bce": weighted_bce_loss(cls_outputs, targets) * SCALE}``."""
        ratios = self.positive_ratios if self.bce["weight_enabled"] else None
        if self.bce["weight_enabled"] and ratios is None:
            raise RuntimeError(
                "MODEL.LOSSES.BCE.WEIGHT_ENABLED needs the training positive ratios: call "
                "model.set_positive_ratios(...) (AttrTrainer does) or disable the weighting."
            )
        loss = weighted_bce_loss(outputs["cls_outputs"], gt_labels, ratios, self.bce["norm"])
        return {"loss_bce": loss * self.bce["scale"]}
