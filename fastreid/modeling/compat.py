"""Load FastReID checkpoints: map its older parameter names onto fastreid's.

fastreid keeps FastReID's (v1.x) module names, so a FastReID checkpoint's ``model`` dict
loads as is. :func:`map_fastreid_state_dict` additionally handles what older FastReID
releases and training wrappers wrote:

==========================================  ================================================
checkpoint key                              fastreid key
==========================================  ================================================
``module.<key>`` (DDP / DataParallel)       ``<key>`` (repeated prefixes stripped too)
``<head>.classifier.weight``                ``<head>.weight`` (the classifier weight)
``<head>.cls_layer.weight``                 ``<head>.weight``
``<head>.bnneck.<x>``                       ``<head>.bottleneck.0.<x>``; ``<head>.bottleneck.1.<x>``
                                            when the checkpoint has a 1x1 reduction conv
                                            ``<head>.bottleneck.0.weight``; kept as is when
                                            the checkpoint already has that neck BN under
                                            ``bottleneck`` (FastAttr's ``bnneck`` is a
                                            second BN, on the logits)
``pixel_mean``, ``pixel_std``               dropped: normalisation comes from
                                            MODEL.PIXEL_MEAN / PIXEL_STD (as in FastReID v1.x)
==========================================  ================================================

``<head>`` is ``heads`` for Baseline and ``b1_head`` ... ``b33_head`` for MGN. A full
checkpoint (a dict with a ``model`` entry) is accepted too.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, Union

import torch

__all__ = ["map_fastreid_state_dict", "num_classes_in_checkpoint", "FASTREID_KEY_MAPPING"]

# (pattern, replacement) pairs applied in order; documented in the module docstring.
FASTREID_KEY_MAPPING = (
    (r"^(?P<head>(?:.*\.)?[^.]*head[s]?)\.classifier\.weight$", r"\g<head>.weight"),
    (r"^(?P<head>(?:.*\.)?[^.]*head[s]?)\.cls_layer\.weight$", r"\g<head>.weight"),
)
_BNNECK = re.compile(r"^(?P<head>(?:.*\.)?[^.]*head[s]?)\.bnneck\.(?P<rest>.+)$")
_DROPPED = ("pixel_mean", "pixel_std")


def _strip_module_prefix(key: str) -> str:
    while key.startswith("module."):
        key = key[len("module.") :]
    return key


def map_fastreid_state_dict(state_dict: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """Return a new state dict with FastReID's older key names mapped to fastreid's.

    Args:
        state_dict: a model state dict, or a checkpoint dict holding it under ``model``.
    Returns:
        an ``OrderedDict`` ready for ``model.load_state_dict``; keys already in fastreid's
        naming pass through unchanged.
    """
    if "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]
    stripped = OrderedDict((_strip_module_prefix(k), v) for k, v in state_dict.items())

    mapped: Dict[str, torch.Tensor] = OrderedDict()
    for key, value in stripped.items():
        if key in _DROPPED:
            continue
        match = _BNNECK.match(key)
        if match is not None:
            head = match.group("head")
            conv = stripped.get(f"{head}.bottleneck.0.weight")
            has_reduction = isinstance(conv, torch.Tensor) and conv.dim() == 4
            neck = f"{head}.bottleneck.{1 if has_reduction else 0}."
            # A neck already named ``bottleneck`` means ``bnneck`` is another layer (FastAttr's
            # BatchNorm on the logits): mapping it would overwrite the neck.
            if not any(k.startswith(neck) for k in stripped):
                key = neck + match.group("rest")
        else:
            for pattern, replacement in FASTREID_KEY_MAPPING:
                key = re.sub(pattern, replacement, key)
        mapped[key] = value
    return mapped


# A head's classifier weight: ``heads.weight`` (Baseline) or ``<branch>_head.weight`` (MGN).
_CLASSIFIER_KEY = re.compile(r"^(?:heads|\w+_head)\.weight$")


def num_classes_in_checkpoint(path: Union[str, Mapping[str, Any]]) -> int:
    """``MODEL.HEADS.NUM_CLASSES`` a checkpoint (a path, or a checkpoint dict already read
    by ``load_checkpoint_file``) was trained with (0 when it cannot tell).

    Read from the config a fastreid checkpoint stores, else from the classifier's rows
    (``heads.weight`` in FastReID checkpoints, ``b1_head.weight`` ... ``b33_head.weight`` in
    MGN ones). Inference builds its classifier with this size so loading reports no spurious
    shape mismatch for a layer it never uses.
    """
    from fastreid.config import CfgNode
    from fastreid.utils.checkpoint import load_checkpoint_file, strip_module_prefix

    checkpoint = load_checkpoint_file(path) if isinstance(path, str) else path
    stored = checkpoint.get("config")
    if isinstance(stored, str):
        saved = CfgNode.load_cfg(stored)
        if "MODEL" in saved and int(saved.MODEL.HEADS.NUM_CLASSES) > 0:
            return int(saved.MODEL.HEADS.NUM_CLASSES)
    state = map_fastreid_state_dict(strip_module_prefix(checkpoint["model"]))
    for key, weight in state.items():
        if _CLASSIFIER_KEY.match(key) and isinstance(weight, torch.Tensor) and weight.dim() == 2:
            return int(weight.shape[0])
    return 0
