"""Helpers for the FastReID parity tests: rebuild a golden's model, weights and input.

A golden (``tests/fixtures/fastreid_parity/*.json``) holds what FastReID's own code computes
for one recipe: its state-dict keys and shapes, a few kept tensors, and the eval features.
The weights follow from each key name and shape alone (see the fixture README), so the
same state dict can be rebuilt here under FastReID's names and loaded through
``MODEL.WEIGHTS`` like any user checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from typing import Any, Dict, List, Tuple

import torch

from fastreid.config import CfgNode, get_cfg

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "fastreid_parity")
MIN_COSINE = 0.9999
MAX_REL_DIFF = 1e-3


def golden_names() -> List[str]:
    return sorted(f[: -len(".json")] for f in os.listdir(FIXTURES) if f.endswith(".json"))


def load_golden(name: str) -> Dict[str, Any]:
    with open(os.path.join(FIXTURES, f"{name}.json")) as f:
        return json.load(f)


def rule_tensor(key: str, shape: List[int]) -> torch.Tensor:
    """The fixture README's deterministic value for ``key`` (seeded by its name's CRC32)."""
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    shape = tuple(shape)
    if key.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=g)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g)
    if len(shape) == 1 and key.endswith("weight"):
        return 1 + 0.1 * torch.randn(shape, generator=g)
    if len(shape) <= 1:
        return 0.1 * torch.randn(shape, generator=g)
    return torch.randn(shape, generator=g) * math.sqrt(0.5 / math.prod(shape[1:]))


def golden_state_dict(golden: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """FastReID's state dict for ``golden``, under FastReID's key names."""
    kept = golden["kept"]
    state = {}
    for key, shape in golden["keys"].items():
        if key in kept:
            value = kept[key]
            dtype = torch.int64 if key.endswith("num_batches_tracked") else torch.float32
            state[key] = torch.tensor(value, dtype=dtype).reshape(tuple(shape))
        else:
            state[key] = rule_tensor(key, shape)
    return state


def golden_cfg(golden: Dict[str, Any], weights: str = "") -> CfgNode:
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, golden["config"]))
    cfg.merge_from_list(list(golden["opts"]) + ["MODEL.WEIGHTS", weights])
    return cfg


def golden_input(cfg: CfgNode) -> torch.Tensor:
    h, w = (int(v) for v in cfg.INPUT.SIZE_TEST)
    return torch.rand((2, 3, h, w), generator=torch.Generator().manual_seed(0)) * 255


def compare(got: torch.Tensor, expected: torch.Tensor) -> Tuple[float, float]:
    """(minimum row cosine, max |difference| / max |expected|)."""
    cos = torch.nn.functional.cosine_similarity(got.double(), expected.double(), dim=1)
    rel = (got.double() - expected.double()).abs().max() / expected.double().abs().max()
    return float(cos.min()), float(rel)
