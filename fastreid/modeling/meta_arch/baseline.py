"""Baseline: backbone + head, the meta-architecture of BoT, AGW and SBS."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from fastreid.config import CfgNode, configurable
from fastreid.modeling.backbones.build import build_backbone
from fastreid.modeling.heads.build import build_heads
from fastreid.modeling.layers.pooling import Flatten
from fastreid.modeling.losses import (
    cross_entropy_loss,
    focal_loss,
    pairwise_circleloss,
    pairwise_cosface,
    triplet_loss,
)
from fastreid.modeling.protocols import accepts_camids
from fastreid.utils.precision_bn import in_bn_statistics_pass

from .build import META_ARCH_REGISTRY

__all__ = ["Baseline", "loss_kwargs_from_config", "LOSS_NAMES"]

# MODEL.LOSSES.NAME entries and the key of the loss they add to the loss dict.
LOSS_NAMES = {
    "CrossEntropyLoss": "loss_cls",
    "TripletLoss": "loss_triplet",
    "CircleLoss": "loss_circle",
    "Cosface": "loss_cosface",
    "FocalLoss": "loss_focal",
}

BatchedInputs = Union[torch.Tensor, Mapping[str, Any]]


def loss_kwargs_from_config(cfg: CfgNode) -> Dict[str, Any]:
    """The loss settings of ``MODEL.LOSSES`` as the ``loss_kwargs`` dict the meta-archs take."""
    losses = cfg.MODEL.LOSSES
    return {
        "loss_names": tuple(losses.NAME),
        "ce": {"eps": losses.CE.EPSILON, "alpha": losses.CE.ALPHA, "scale": losses.CE.SCALE},
        "tri": {
            "margin": losses.TRI.MARGIN,
            "norm_feat": losses.TRI.NORM_FEAT,
            "hard_mining": losses.TRI.HARD_MINING,
            "scale": losses.TRI.SCALE,
        },
        "circle": {
            "margin": losses.CIRCLE.MARGIN,
            "gamma": losses.CIRCLE.GAMMA,
            "scale": losses.CIRCLE.SCALE,
        },
        "cosface": {
            "margin": losses.COSFACE.MARGIN,
            "gamma": losses.COSFACE.GAMMA,
            "scale": losses.COSFACE.SCALE,
        },
        "focal": {"alpha": losses.FL.ALPHA, "gamma": losses.FL.GAMMA, "scale": losses.FL.SCALE},
    }


def check_loss_names(names: Sequence[str], supported: Sequence[str]) -> None:
    unknown = [n for n in names if n not in supported]
    if unknown:
        raise KeyError(
            f"Unknown MODEL.LOSSES.NAME entries {unknown}; this model supports "
            f"{', '.join(supported)}."
        )


class ImageNormalizer(nn.Module):
    """The base of every meta-architecture: holds ``pixel_mean`` / ``pixel_std`` ``(1, 3, 1, 1)``
    buffers and turns model inputs into normalised images on the model's device; keeps frozen
    models (:meth:`add_frozen_model`) and the :meth:`extra_loss_inputs` seam.

    The buffers are not saved in the state dict (as in FastReID): the config gives them.
    """

    def __init__(self, pixel_mean: Sequence[float], pixel_std: Sequence[float]) -> None:
        super().__init__()
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(
                "MODEL.PIXEL_MEAN and MODEL.PIXEL_STD must have the same length, got "
                f"{len(pixel_mean)} and {len(pixel_std)}."
            )
        self.register_buffer(
            "pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, -1, 1, 1), False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, -1, 1, 1), False
        )

    # Set by build_model for MODEL.CHANNELS_LAST: images then enter the backbone as NHWC.
    channels_last = False

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: BatchedInputs) -> torch.Tensor:
        """Normalised images ``(B, 3, H, W)`` from a batch dict (key ``images``) or a tensor.

        Inputs are 0-255 RGB; the result is ``(x - pixel_mean) / pixel_std``.
        """
        if isinstance(batched_inputs, torch.Tensor):
            images = batched_inputs
        elif isinstance(batched_inputs, Mapping) and "images" in batched_inputs:
            images = batched_inputs["images"]
        else:
            raise TypeError(
                "The model takes a batch dict with key 'images' (and 'targets' in training) or "
                f"an image tensor (B, 3, H, W); got {type(batched_inputs).__name__}."
            )
        # Loaders send uint8: 4x less to copy to the device, converted there.
        images = images.to(self.pixel_mean.device, non_blocking=True)
        if not images.is_floating_point():
            images = images.float()
        images = (images - self.pixel_mean) / self.pixel_std
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def get_targets(self, batched_inputs: BatchedInputs) -> torch.Tensor:
        """Training class ids ``(B,)`` int64 on the model's device (all-negative ids become 0)."""
        if not isinstance(batched_inputs, Mapping) or "targets" not in batched_inputs:
            raise ValueError(
                "Training needs a batch dict with 'targets' (class ids); a plain image tensor or "
                "a dict without 'targets' only works in eval mode (call model.eval())."
            )
        targets = batched_inputs["targets"].to(self.pixel_mean.device, non_blocking=True)
        # Unlabelled data (all ids negative): the classifier still needs a valid index.
        # Decided on the device, so no host sync happens in the training step.
        return torch.where((targets < 0).all(), torch.zeros_like(targets), targets)

    def get_camids(self, batched_inputs: BatchedInputs) -> Optional[torch.Tensor]:
        if isinstance(batched_inputs, Mapping) and "camids" in batched_inputs:
            camids = batched_inputs["camids"]
            if isinstance(camids, torch.Tensor):
                return camids.to(self.pixel_mean.device, non_blocking=True)
        return None

    # -- frozen models (teachers) ------------------------------------------------------------
    def add_frozen_model(self, name: str, model: nn.Module) -> nn.Module:
        """Attach ``model`` as ``self.<name>``: frozen (no gradients), always in eval mode
        (``self.train()`` does not reach it), moved by ``self.to(...)``, and absent from
        ``parameters()``, ``state_dict()`` and therefore from optimizers and checkpoints."""
        if name in self.__dict__ or name in self._modules or hasattr(type(self), name):
            raise KeyError(f"{type(self).__name__} already has an attribute '{name}'.")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        model.to(self.device)
        self.__dict__.setdefault("_frozen_models", {})[name] = model
        object.__setattr__(self, name, model)  # bypass nn.Module registration on purpose
        return model

    @property
    def frozen_models(self) -> Dict[str, nn.Module]:
        """The models attached with :meth:`add_frozen_model`, by name."""
        return dict(self.__dict__.get("_frozen_models", {}))

    def _apply(self, fn: Any, recurse: bool = True) -> ImageNormalizer:
        super()._apply(fn, recurse)
        for model in self.__dict__.get("_frozen_models", {}).values():
            model._apply(fn)
        return self

    def extra_loss_inputs(
        self,
        batched_inputs: BatchedInputs,
        images: torch.Tensor,
        outputs: Dict[str, torch.Tensor],
    ) -> Dict[str, Any]:
        """Keyword arguments passed on to :meth:`losses` in training (default: none).

        A subclass computes here what its extra losses need (``images`` are the normalised
        student inputs), e.g. a frozen teacher's logits::

            with torch.no_grad():
                return {"teacher_outputs": self.teacher.head_outputs(batched_inputs)}
        """
        return {}


@META_ARCH_REGISTRY.register()
class Baseline(ImageNormalizer):
    """Backbone + head; normalises the images itself.

    ``forward(batched_inputs)`` takes a batch dict (``images`` float ``(B, 3, H, W)`` 0-255 RGB,
    ``targets`` int64 ``(B,)``, optional ``camids`` ``(B,)``) or a plain image tensor.

    * training -> ``Dict[str, Tensor]`` of named scalar losses (see :meth:`losses`);
    * eval -> features ``(B, D)`` from the head (not normalised).

    Subclasses (distillation) reuse :meth:`preprocess_image`, :meth:`backbone_features` and
    extend :meth:`extra_loss_inputs`, :meth:`losses` and :meth:`from_config` instead of copying
    ``forward``. Frozen models a subclass needs (teachers) are attached with
    :meth:`add_frozen_model`: they stay in eval mode, follow ``.to()``, and are neither
    parameters nor checkpoint entries of this model.
    """

    supported_losses = tuple(LOSS_NAMES)

    @configurable
    def __init__(
        self,
        *,
        backbone: nn.Module,
        heads: nn.Module,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        loss_kwargs: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(pixel_mean, pixel_std)
        self.backbone = backbone
        self.heads = heads
        self.loss_kwargs = loss_kwargs or {"loss_names": ("CrossEntropyLoss",), "ce": {}}
        check_loss_names(self.loss_kwargs.get("loss_names", ()), self.supported_losses)
        check_head_input(backbone, heads)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> Dict[str, Any]:
        return {
            "backbone": build_backbone(cfg),
            "heads": build_heads(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "loss_kwargs": loss_kwargs_from_config(cfg),
        }

    def backbone_features(
        self, images: torch.Tensor, camids: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Run the backbone on normalised images; camera ids go to backbones that accept them."""
        if accepts_camids(self.backbone):
            return self.backbone(images, camids=camids)
        return self.backbone(images)

    # -- forward ----------------------------------------------------------------------------
    def forward(
        self, batched_inputs: BatchedInputs
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        images = self.preprocess_image(batched_inputs)
        features = self.backbone_features(images, self.get_camids(batched_inputs))
        if not self.training:
            return self.heads(features)
        targets = self.get_targets(batched_inputs)
        outputs = self.heads(features, targets)
        if in_bn_statistics_pass():  # precise BN: only the BN statistics are wanted
            return {}
        return self.losses(
            outputs, targets, **self.extra_loss_inputs(batched_inputs, images, outputs)
        )

    def head_outputs(self, batched_inputs: BatchedInputs) -> Dict[str, torch.Tensor]:
        """The head's dict with margin-free ``pred_class_logits`` and ``features``, in either
        mode (what a distillation teacher gives): training -> the training dict; eval ->
        ``{"features": eval features, "pred_class_logits"}``."""
        images = self.preprocess_image(batched_inputs)
        features = self.backbone_features(images, self.get_camids(batched_inputs))
        if self.training:
            return self.heads(features, self.get_targets(batched_inputs))
        return self.heads(features, with_logits=True)

    def losses(
        self, outputs: Dict[str, torch.Tensor], gt_labels: torch.Tensor, **extra: Any
    ) -> Dict[str, torch.Tensor]:
        """Named, weighted losses enabled by ``loss_kwargs["loss_names"]`` (MODEL.LOSSES.NAME).

        Args:
            outputs: the head's training dict (``cls_outputs``, ``pred_class_logits``,
                ``features``).
            gt_labels: ``(B,)`` class ids.
            extra: what :meth:`extra_loss_inputs` returned; a subclass that adds losses takes
                its inputs from here and calls ``super().losses(outputs, gt_labels)``.
        Returns:
            ``loss_cls`` / ``loss_triplet`` / ``loss_circle`` / ``loss_cosface`` / ``loss_focal``,
            each multiplied by its ``SCALE``.
        """
        names = self.loss_kwargs["loss_names"]
        cls_outputs = outputs["cls_outputs"]
        features = outputs["features"]
        loss_dict: Dict[str, torch.Tensor] = {}
        if "CrossEntropyLoss" in names:
            kw = self.loss_kwargs.get("ce", {})
            loss_dict["loss_cls"] = cross_entropy_loss(
                cls_outputs, gt_labels, kw.get("eps", 0.0), kw.get("alpha", 0.2)
            ) * kw.get("scale", 1.0)
        if "TripletLoss" in names:
            kw = self.loss_kwargs["tri"]
            loss_dict["loss_triplet"] = triplet_loss(
                features, gt_labels, kw["margin"], kw["norm_feat"], kw["hard_mining"]
            ) * kw.get("scale", 1.0)
        if "CircleLoss" in names:
            kw = self.loss_kwargs["circle"]
            loss_dict["loss_circle"] = pairwise_circleloss(
                features, gt_labels, kw["margin"], kw["gamma"]
            ) * kw.get("scale", 1.0)
        if "Cosface" in names:
            kw = self.loss_kwargs["cosface"]
            loss_dict["loss_cosface"] = pairwise_cosface(
                features, gt_labels, kw["margin"], kw["gamma"]
            ) * kw.get("scale", 1.0)
        if "FocalLoss" in names:
            kw = self.loss_kwargs["focal"]
            loss_dict["loss_focal"] = focal_loss(
                cls_outputs, gt_labels, kw["alpha"], kw["gamma"]
            ) * kw.get("scale", 1.0)
        return loss_dict


def check_head_input(backbone: nn.Module, heads: nn.Module) -> None:
    """Raise when the head expects another channel count than the backbone produces."""
    backbone_dim = getattr(backbone, "feat_dim", None)
    head_dim = getattr(heads, "in_channels", None)
    if isinstance(getattr(heads, "pool_layer", None), Flatten):
        return  # the head sees C * h * w channels, not C
    if isinstance(backbone_dim, int) and isinstance(head_dim, int) and backbone_dim != head_dim:
        raise ValueError(
            f"The head expects {head_dim}-channel features but the backbone "
            f"{type(backbone).__name__} outputs {backbone_dim}; set MODEL.BACKBONE.FEAT_DIM "
            f"{backbone_dim}."
        )
