"""Loading pretrained backbone weights from a local file, with a per-key report."""

from __future__ import annotations

import logging
import os
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch
from tabulate import tabulate
from torch import nn

from fastreid.config import CfgNode
from fastreid.utils.checkpoint import CheckpointError

__all__ = ["LoadReport", "load_pretrained_weights", "load_backbone_pretrain", "unwrap_state_dict"]

logger = logging.getLogger(__name__)

KeyMapper = Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]

# Prefixes that wrap a plain backbone state dict: DataParallel, FastReID full models, timm-ish.
_STRIP_PREFIXES = ("module.", "backbone.", "model.")


class LoadReport:
    """What happened when a state dict was loaded into a model."""

    def __init__(
        self,
        loaded: List[str],
        missing: List[str],
        unexpected: List[str],
        mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]],
    ) -> None:
        self.loaded = loaded
        self.missing = missing
        self.unexpected = unexpected
        # (key, shape in the checkpoint, shape in the model)
        self.mismatched = mismatched

    def table(self) -> str:
        rows = [(k, "missing (kept init)", "") for k in self.missing]
        rows += [(k, "unexpected (ignored)", "") for k in self.unexpected]
        rows += [
            (k, "shape mismatch (skipped)", f"checkpoint {tuple(c)} vs model {tuple(m)}")
            for k, c, m in self.mismatched
        ]
        return tabulate(rows, headers=["key", "status", "detail"], tablefmt="pipe")

    def __repr__(self) -> str:
        return (
            f"LoadReport(loaded={len(self.loaded)}, missing={len(self.missing)}, "
            f"unexpected={len(self.unexpected)}, mismatched={len(self.mismatched)})"
        )


def unwrap_state_dict(obj: object) -> Dict[str, torch.Tensor]:
    """Return the tensor dict inside a checkpoint object.

    Accepts a bare state dict or one nested under ``model`` / ``state_dict`` / ``net``, and
    strips the ``module.`` / ``backbone.`` / ``model.`` prefix when every key carries it.
    """
    for key in ("model", "state_dict", "net"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"Expected a state dict (a mapping of names to tensors), got {type(obj).__name__}."
        )
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in _STRIP_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    # A FastReID full-model checkpoint: keep only the backbone part.
    if any(k.startswith("backbone.") for k in state) and any(k.startswith("heads.") for k in state):
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    return state


def load_pretrained_weights(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    key_mapper: Optional[KeyMapper] = None,
    source: str = "state dict",
) -> LoadReport:
    """Copy matching tensors of ``state_dict`` into ``model`` and log what did not match.

    Shape mismatches are skipped (the model keeps its init) and listed, as are missing and
    unexpected keys, in a table through the logger.
    """
    state = unwrap_state_dict(state_dict)
    if key_mapper is not None:
        state = key_mapper(state)
    own = model.state_dict()
    compatible: Dict[str, torch.Tensor] = {}
    mismatched = []
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            mismatched.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            compatible[key] = value
    result = model.load_state_dict(compatible, strict=False)
    # BN batch counters are bookkeeping, not weights: never report them.
    skipped = {k for k, _, _ in mismatched}
    missing = [
        k for k in result.missing_keys if not k.endswith("num_batches_tracked") and k not in skipped
    ]
    unexpected = [k for k in result.unexpected_keys if not k.endswith("num_batches_tracked")]
    loaded = [k for k in compatible if k in own]
    report = LoadReport(loaded, missing, unexpected, mismatched)
    logger.info(
        "Loaded %d/%d tensors of %s from %s.",
        len(loaded),
        len(own),
        type(model).__name__,
        source,
    )
    if missing or unexpected or mismatched:
        logger.warning("Keys not loaded from %s:\n%s", source, report.table())
    return report


def load_backbone_pretrain(
    model: nn.Module, cfg: CfgNode, key_mapper: Optional[KeyMapper] = None
) -> Optional[LoadReport]:
    """Apply ``MODEL.BACKBONE.PRETRAIN`` / ``PRETRAIN_PATH`` to a freshly built backbone.

    Nothing is ever downloaded. ``PRETRAIN`` with an empty path warns and keeps random init;
    a path that does not exist raises ``FileNotFoundError``.
    """
    if not cfg.MODEL.BACKBONE.PRETRAIN:
        return None
    path = cfg.MODEL.BACKBONE.PRETRAIN_PATH
    if not path:
        logger.warning(
            "MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty: %s starts "
            "from random init. Set PRETRAIN_PATH to a local weights file (nothing is downloaded) "
            "or PRETRAIN False to silence this.",
            cfg.MODEL.BACKBONE.NAME,
        )
        return None
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"MODEL.BACKBONE.PRETRAIN_PATH points to '{path}', which does not exist. Give the path "
            "of a local weights file, or set MODEL.BACKBONE.PRETRAIN False."
        )
    # Only torch's restricted unpickler: a full unpickle of a downloaded file could run code.
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types (UnpicklingError, RuntimeError, ...)
        raise CheckpointError(
            f"MODEL.BACKBONE.PRETRAIN_PATH '{path}' cannot be read as plain weights "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). fastreid loads "
            "only tensors and plain containers, never arbitrary pickled objects. Give a state "
            "dict saved with torch.save(model.state_dict(), path); if you trust the file's "
            "origin, convert it once: torch.save(torch.load(path, weights_only=False)"
            "['state_dict'], new_path)."
        ) from e
    return load_pretrained_weights(model, state, key_mapper=key_mapper, source=path)
