"""Pretrained backbone weights, with a per-key report.

``MODEL.BACKBONE.PRETRAIN_PATH`` loads a local file. ``PRETRAIN True`` with no path resolves
the backbone's ImageNet weights by their usual file name: the torch hub cache first, then a
download through ``torch.hub`` with the sha256-prefix check of the name. When neither works
the build stops with one line that names the file, where to put it and the ways out.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import urllib.error
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch
from tabulate import tabulate
from torch import nn

from fastreid.config import CfgNode
from fastreid.utils.checkpoint import CheckpointError
from fastreid.utils.errors import BadInputError

__all__ = [
    "IMAGENET_WEIGHTS",
    "LoadReport",
    "PretrainUnavailableError",
    "hub_checkpoint_dirs",
    "load_backbone_pretrain",
    "load_pretrained_weights",
    "resolve_imagenet_weights",
    "unwrap_state_dict",
]

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


# ---------------------------------------------------------------------------------------------
# ImageNet weights resolved by name: the torch hub cache first, then a hash-checked download.
# ---------------------------------------------------------------------------------------------

# Set to 1 to never download (CI, air-gapped machines): only the hub cache is looked at.
OFFLINE_ENV = "FASTREID_OFFLINE"
# Seconds without data after which a download is abandoned (never a hang on a dead network).
DOWNLOAD_TIMEOUT_S = 60.0

_TORCHVISION = "https://download.pytorch.org/models/"
_IBN_NET = "https://github.com/XingangPan/IBN-Net/releases/download/v1.0/"

# Backbone key -> the file names (torchvision's current name, then FastReID's) with their URLs.
# The 8 hex digits of each name are the start of the file's sha256 (torch.hub's convention),
# checked on download. The first entry is the one downloaded.
IMAGENET_WEIGHTS: Dict[str, List[Tuple[str, str]]] = {
    "resnet18": [
        ("resnet18-f37072fd.pth", _TORCHVISION),
        ("resnet18-5c106cde.pth", _TORCHVISION),
    ],
    "resnet34": [
        ("resnet34-b627a593.pth", _TORCHVISION),
        ("resnet34-333f7ec4.pth", _TORCHVISION),
    ],
    "resnet50": [
        ("resnet50-0676ba61.pth", _TORCHVISION),
        ("resnet50-19c8e357.pth", _TORCHVISION),
    ],
    "resnet101": [
        ("resnet101-63fe2227.pth", _TORCHVISION),
        ("resnet101-5d3b4d8f.pth", _TORCHVISION),
    ],
    "resnet152": [
        ("resnet152-394f9c45.pth", _TORCHVISION),
        ("resnet152-b121ed2d.pth", _TORCHVISION),
    ],
    "resnet18_ibn_a": [("resnet18_ibn_a-2f571257.pth", _IBN_NET)],
    "resnet34_ibn_a": [("resnet34_ibn_a-94bc1577.pth", _IBN_NET)],
    "resnet50_ibn_a": [("resnet50_ibn_a-d9d0bb7b.pth", _IBN_NET)],
    "resnet101_ibn_a": [("resnet101_ibn_a-59ea0ac6.pth", _IBN_NET)],
    "resnext50_32x4d": [("resnext50_32x4d-7cdf4587.pth", _TORCHVISION)],
    "resnext101_32x8d": [("resnext101_32x8d-8ba56ff5.pth", _TORCHVISION)],
}

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")


class PretrainUnavailableError(BadInputError):
    """``PRETRAIN True`` without a path, and the ImageNet weights are neither cached nor
    downloadable; the message names the file, where to put it and the ways out."""


def hub_checkpoint_dirs() -> List[str]:
    """Where cached ImageNet weights are looked for: torch hub's ``<hub dir>/checkpoints``
    (torchvision) and ``$TORCH_HOME/checkpoints`` (FastReID's own download folder)."""
    hub = os.path.join(torch.hub.get_dir(), "checkpoints")
    torch_home = os.path.dirname(torch.hub.get_dir())  # get_dir() is $TORCH_HOME/hub
    dirs = [hub, os.path.join(torch_home, "checkpoints")]
    return list(dict.fromkeys(dirs))


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _download(url: str, dst: str) -> None:
    """``torch.hub.download_url_to_file`` with the sha256-prefix check of the file name and a
    socket timeout. The file appears at ``dst`` only when complete and matching."""
    match = _HASH_IN_NAME.search(os.path.basename(dst))
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(
            url, dst, hash_prefix=match.group(1) if match else None, progress=sys.stderr.isatty()
        )
    finally:
        socket.setdefaulttimeout(previous)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"no connection ({exc.reason})"
    if isinstance(exc, RuntimeError) and "invalid hash value" in str(exc):
        return f"refused, the file's sha256 does not match its name ({exc})"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def resolve_imagenet_weights(key: str, download: Optional[bool] = None) -> str:
    """The local path of the ImageNet weights named ``key`` in :data:`IMAGENET_WEIGHTS`.

    Looks in :func:`hub_checkpoint_dirs` under every known file name, then downloads the first
    name into the hub cache (unless ``download`` is False or ``FASTREID_OFFLINE=1``).
    Raises :class:`PretrainUnavailableError` (one line: the file, where to put it, the ways
    out) when neither works.
    """
    if key not in IMAGENET_WEIGHTS:
        raise PretrainUnavailableError(
            f"MODEL.BACKBONE.PRETRAIN is True but no ImageNet weights are known for '{key}'. "
            "Set MODEL.BACKBONE.PRETRAIN_PATH to a local weights file, or "
            "MODEL.BACKBONE.PRETRAIN False to train from random init."
        )
    names = IMAGENET_WEIGHTS[key]
    dirs = hub_checkpoint_dirs()
    for directory in dirs:
        for name, _ in names:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                logger.info("ImageNet weights of %s: %s (torch hub cache).", key, path)
                return path
    name, base = names[0]
    url = base + name
    target = os.path.join(dirs[0], name)
    if download is None:
        download = True
    if download and not _offline():
        try:
            os.makedirs(dirs[0], exist_ok=True)
            logger.info("Downloading the ImageNet weights of %s from %s to %s", key, url, target)
            _download(url, target)
            return target
        except Exception as exc:  # urllib, socket and hash errors all end in the one message
            why = f"the download from {url} failed: {_reason(exc)}"
    else:
        why = f"downloads are off ({OFFLINE_ENV}=1)" if _offline() else "downloads are off"
    looked_for = " or ".join(n for n, _ in names)
    raise PretrainUnavailableError(
        f"MODEL.BACKBONE.PRETRAIN is True but the ImageNet weights of {key} ({looked_for}) are "
        f"not in {' or '.join(dirs)} and {why}. Download {url} into {dirs[0]}, or set "
        "MODEL.BACKBONE.PRETRAIN_PATH to a local weights file, or MODEL.BACKBONE.PRETRAIN False "
        "to train from random init."
    )


def load_backbone_pretrain(
    model: nn.Module,
    cfg: CfgNode,
    key_mapper: Optional[KeyMapper] = None,
    imagenet: Optional[str] = None,
) -> Optional[LoadReport]:
    """Apply ``MODEL.BACKBONE.PRETRAIN`` / ``PRETRAIN_PATH`` to a freshly built backbone.

    A path is loaded as is (``FileNotFoundError`` when it does not exist). With an empty path
    the ImageNet weights named ``imagenet`` (a key of :data:`IMAGENET_WEIGHTS`, given by the
    backbone's builder) are resolved by :func:`resolve_imagenet_weights`; a backbone without
    known weights raises :class:`PretrainUnavailableError`. Never a silent random init.
    """
    if not cfg.MODEL.BACKBONE.PRETRAIN:
        return None
    path = cfg.MODEL.BACKBONE.PRETRAIN_PATH
    if not path:
        if imagenet is None:
            raise PretrainUnavailableError(
                f"MODEL.BACKBONE.PRETRAIN is True but {cfg.MODEL.BACKBONE.NAME} (DEPTH "
                f"{cfg.MODEL.BACKBONE.DEPTH}) has no ImageNet weights that fastreid can fetch. "
                "Set MODEL.BACKBONE.PRETRAIN_PATH to a local weights file, or "
                "MODEL.BACKBONE.PRETRAIN False to train from random init."
            )
        path = resolve_imagenet_weights(
            imagenet, download=bool(cfg.MODEL.BACKBONE.get("PRETRAIN_DOWNLOAD", True))
        )
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
