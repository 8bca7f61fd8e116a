"""Mixed precision: which autocast dtype ``SOLVER.AMP`` asks for on a device."""

from __future__ import annotations

import logging
from typing import Optional

import torch

from fastreid.config import CfgNode

__all__ = ["autocast_dtype"]

logger = logging.getLogger(__name__)


def autocast_dtype(cfg: CfgNode, device_type: str) -> Optional[torch.dtype]:
    """The autocast dtype SOLVER.AMP asks for on ``device_type`` (``None``: full precision)."""
    amp = cfg.SOLVER.AMP
    if not amp.ENABLED:
        return None
    if device_type == "cuda":
        names = {
            "float16": torch.float16,
            "fp16": torch.float16,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
        }
        if str(amp.DTYPE).lower() not in names:
            raise ValueError(
                f"SOLVER.AMP.DTYPE must be 'float16' or 'bfloat16', got '{amp.DTYPE}'."
            )
        return names[str(amp.DTYPE).lower()]
    if device_type == "cpu":
        if not amp.CPU:
            logger.info(
                "SOLVER.AMP.ENABLED applies to CUDA; training on the CPU in float32 (set SOLVER.AMP.CPU True for bf16 autocast)."
            )
            return None
        return torch.bfloat16
    return None
