"""Seeding, RNG state capture/restore and a description of the software environment."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import random
import sys
from datetime import datetime
from typing import Any, Dict, Iterator, Optional, Union

import numpy as np
import torch

__all__ = [
    "resolve_device",
    "seed_all_rng",
    "get_rng_state",
    "set_rng_state",
    "preserve_rng_state",
    "collect_env_info",
]


def resolve_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """``device`` (e.g. ``MODEL.DEVICE``) as a ``torch.device``; ``None`` means the CPU.

    CUDA falls back to the CPU, with a warning, when no GPU is available, so a GPU recipe
    still runs on a laptop. A name torch does not know raises ``ValueError``.
    """
    try:
        resolved = torch.device(device if device is not None else "cpu")
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"MODEL.DEVICE {device!r} is not a device name; use 'cuda', 'cuda:N' or 'cpu'."
        ) from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        logging.getLogger(__name__).warning(
            "MODEL.DEVICE is '%s' but CUDA is not available; using the CPU. "
            "Set MODEL.DEVICE cpu to silence this warning.",
            device,
        )
        return torch.device("cpu")
    return resolved


def seed_all_rng(seed: Optional[int] = None) -> int:
    """Seed Python, NumPy and torch (all devices). A ``None`` or negative seed picks one
    from the clock and pid; the seed actually used is returned (and should be logged)."""
    if seed is None or seed < 0:
        seed = (
            os.getpid()
            + int(datetime.now().strftime("%S%f"))
            + int.from_bytes(os.urandom(2), "big")
        ) % (2**31)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return seed


def get_rng_state() -> Dict[str, Any]:
    """Every global random state, as objects ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    state: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore states captured by :func:`get_rng_state`."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        s = state["numpy"]
        np.random.set_state(
            (
                s["name"],
                s["keys"].numpy().astype(np.uint32),
                s["pos"],
                s["has_gauss"],
                s["cached_gaussian"],
            )
        )
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


@contextlib.contextmanager
def preserve_rng_state() -> Iterator[None]:
    """Run a block without disturbing the global random streams (e.g. evaluation inside
    training), so a resumed run draws the same random numbers as an uninterrupted one."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def collect_env_info() -> str:
    """A table of the versions and devices that matter when reporting a result or a bug."""
    from tabulate import tabulate

    rows = [
        ("sys.platform", sys.platform),
        ("Platform", platform.platform()),
        ("Python", sys.version.replace("\n", " ")),
        ("numpy", np.__version__),
        ("PyTorch", f"{torch.__version__} @ {os.path.dirname(torch.__file__)}"),
        ("PyTorch debug build", str(torch.version.debug)),
        ("CPU threads", str(torch.get_num_threads())),
        ("CPU cores", str(os.cpu_count())),
    ]
    try:
        import torchvision

        rows.append(("torchvision", torchvision.__version__))
    except ImportError:
        rows.append(("torchvision", "not installed"))
    cuda = torch.cuda.is_available()
    rows.append(("CUDA available", str(cuda)))
    if cuda:
        rows.append(("CUDA (build)", str(torch.version.cuda)))
        rows.append(("cuDNN", str(torch.backends.cudnn.version())))
        for i in range(torch.cuda.device_count()):
            rows.append((f"GPU {i}", torch.cuda.get_device_name(i)))
    rows.append(("CPU bf16 (AMX/AVX512-bf16)", str(_cpu_has_bf16())))
    return tabulate(rows)


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
