"""Python API for people who import fastreid: build a model in one call, extract features.

>>> from fastreid.predictor import FeatureExtractor, load_model
>>> extractor = FeatureExtractor(load_model("logs/market1501/bagtricks_R50"))
>>> feats = extractor(["a.jpg", "b.jpg"])          # (2, D) torch.float32, L2-normalised

Preprocessing is the test loader's: RGB, resized to ``INPUT.SIZE_TEST`` (torchvision bicubic
with antialiasing on the uint8 image), float 0-255; the pixel mean/std normalisation happens inside the model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fastreid.config import CfgNode, get_cfg
from fastreid.data.data_utils import read_image
from fastreid.utils.checkpoint import Checkpointer, load_checkpoint_file
from fastreid.utils.env import resolve_device
from fastreid.utils.progress import progress_bar

__all__ = [
    "FeatureExtractor",
    "ImageInput",
    "build_inference_model",
    "build_model_from_cfg",
    "build_model_from_config",
    "load_model",
    "model_device",
    "preprocess_images",
    "read_image",
    "resolve_device",
]

logger = logging.getLogger(__name__)

#: One image: a file path, an ``(H, W, 3)`` uint8 RGB array, or a ``(3, H, W)`` 0-255 tensor.
ImageInput = Union[str, os.PathLike, np.ndarray, torch.Tensor]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for an empty model)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _read_weights(weights: str) -> Dict[str, Any]:
    """The checkpoint ``MODEL.WEIGHTS`` names, read once (``torch.load(weights_only=True)``)."""
    if not Path(weights).is_file():
        raise FileNotFoundError(
            f"MODEL.WEIGHTS '{weights}' does not exist. Pass the checkpoint of a trained model, "
            "e.g. --opts MODEL.WEIGHTS logs/<run>/model_final.pth (or leave MODEL.WEIGHTS empty "
            "for random weights)."
        )
    return load_checkpoint_file(weights)


def build_inference_model(
    cfg: CfgNode,
    device: Optional[Union[str, torch.device]] = None,
    build_fn: Optional[Callable[[CfgNode], nn.Module]] = None,
) -> Tuple[nn.Module, CfgNode]:
    """Build ``cfg``'s model for inference: ``(eval-mode model, the frozen config it was
    built from)``. ``cfg`` itself is left as it is.

    The one way every inference path builds a model (``--eval-only``, the export and
    visualisation tools, :class:`FeatureExtractor`). ``MODEL.WEIGHTS`` (when set) is read
    once. The backbone's ImageNet initialisation is skipped: a full checkpoint replaces it,
    and an empty ``MODEL.WEIGHTS`` gives random weights (useful to test exports). The
    classifier, unused at inference, is sized like the checkpoint's so loading reports no
    spurious mismatch; the returned config records that size and the device.

    Args:
        device: where to put the model (default ``MODEL.DEVICE``; CPU when CUDA is absent).
        build_fn: builds the model from the config (default ``fastreid.modeling.build_model``;
            a project passes its ``Trainer.build_model``).
    """
    from fastreid.modeling import build_model
    from fastreid.modeling.compat import map_fastreid_state_dict, num_classes_in_checkpoint

    build_fn = build_fn or build_model
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.BACKBONE.PRETRAIN = False
    target = resolve_device(device if device is not None else cfg.MODEL.DEVICE)
    cfg.MODEL.DEVICE = str(target)
    checkpoint = _read_weights(cfg.MODEL.WEIGHTS) if cfg.MODEL.WEIGHTS else None
    if checkpoint is not None and cfg.MODEL.HEADS.NUM_CLASSES == 0:
        # The classifier is unused at inference; size it like the checkpoint's.
        cfg.MODEL.HEADS.NUM_CLASSES = num_classes_in_checkpoint(checkpoint)
    model = build_fn(cfg)
    cfg.freeze()
    if checkpoint is not None:
        checkpointer = Checkpointer(model, key_mapper=map_fastreid_state_dict)
        checkpointer.load_from(checkpoint, cfg.MODEL.WEIGHTS, checkpointables=[])
    else:
        logger.warning("MODEL.WEIGHTS is empty: the model has random weights.")
    model.to(target).eval()
    return model, cfg


def build_model_from_cfg(
    cfg: CfgNode,
    device: Optional[Union[str, torch.device]] = None,
    build_fn: Optional[Callable[[CfgNode], nn.Module]] = None,
) -> nn.Module:
    """The model of :func:`build_inference_model`. For the callers that read the config
    back from ``model.cfg`` (the export and visualisation tools), it is also kept there;
    new code takes the config from :func:`build_inference_model` instead."""
    model, used_cfg = build_inference_model(cfg, device, build_fn)
    model.cfg = used_cfg
    return model


def build_model_from_config(
    config_file: Union[str, os.PathLike],
    weights: Optional[str] = None,
    opts: Sequence[str] = (),
    device: Optional[Union[str, torch.device]] = None,
) -> nn.Module:
    """Build the eval-mode model of a YAML config in one call.

    Args:
        config_file: a fastreid / FastReID YAML (``_BASE_`` is resolved).
        weights: checkpoint to load; overrides ``MODEL.WEIGHTS`` from the file and ``opts``.
        opts: ``KEY VALUE`` overrides, as on the command line.
        device: where to put the model; defaults to ``MODEL.DEVICE`` (CPU when CUDA is absent).
    """
    cfg = get_cfg()
    cfg.merge_from_file(str(config_file))
    cfg.merge_from_list(list(opts))
    if weights is not None:
        cfg.MODEL.WEIGHTS = str(weights)
    return build_model_from_cfg(cfg, device)


def _checkpoint_in_folder(folder: Path) -> Path:
    final = folder / "model_final.pth"
    if final.is_file():
        return final
    pointer = folder / "last_checkpoint"
    if pointer.is_file():
        named = folder / pointer.read_text().strip()
        if named.is_file():
            return named
    candidates = sorted(folder.glob("model_*.pth"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(
            f"No checkpoint in '{folder}': expected model_final.pth, last_checkpoint or "
            "model_*.pth (the OUTPUT_DIR of tools/train_net.py)."
        )
    return candidates[-1]


def load_model(
    checkpoint: Union[str, os.PathLike],
    opts: Sequence[str] = (),
    device: Optional[Union[str, torch.device]] = None,
) -> nn.Module:
    """Build and load a trained model from its output folder or one of its checkpoint files.

    The folder (or the checkpoint's folder) must hold the ``config.yaml`` written by training;
    a folder uses ``model_final.pth``, else the file named in ``last_checkpoint``.
    """
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint or output folder '{path}' does not exist.")
    folder, weights = (path, _checkpoint_in_folder(path)) if path.is_dir() else (path.parent, path)
    config = folder / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(
            f"'{config}' not found: load_model needs the config.yaml that training writes next "
            "to the checkpoints; otherwise use build_model_from_config(config_file, weights)."
        )
    return build_model_from_config(config, weights=str(weights), opts=opts, device=device)


def _resize(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    # The test loader's resize: torchvision bicubic with antialiasing, on the uint8 image.
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    if tuple(tensor.shape[-2:]) == (height, width):
        return tensor
    return TF.resize(tensor, [height, width], InterpolationMode.BICUBIC, antialias=True)


def _to_chw_tensor(item: ImageInput, size: Sequence[int]) -> torch.Tensor:
    height, width = int(size[0]), int(size[1])
    if isinstance(item, torch.Tensor):
        tensor = item.detach().cpu()
        if tensor.dim() != 3 or tensor.shape[0] != 3:
            raise ValueError(f"Image tensors must be (3, H, W) 0-255 RGB, got {tuple(item.shape)}.")
        if tensor.dtype != torch.uint8:
            return _resize(tensor.float(), height, width).clamp(0, 255)
        return _resize(tensor, height, width).float()
    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3:
            raise ValueError(f"Image arrays must be (H, W, 3) uint8 RGB, got shape {item.shape}.")
        array = np.ascontiguousarray(item).astype(np.uint8)
    elif isinstance(item, (str, os.PathLike)):
        # The test loader's decoder, so files give exactly the features evaluation sees.
        return _resize(read_image(str(item)), height, width).float()
    else:
        raise TypeError(f"Unsupported image input of type {type(item).__name__}.")
    tensor = torch.from_numpy(array.transpose(2, 0, 1).copy())
    return _resize(tensor, height, width).float()


def preprocess_images(images: Iterable[ImageInput], size: Sequence[int]) -> torch.Tensor:
    """Stack images into a ``(B, 3, H, W)`` float32 0-255 RGB batch of ``size = (H, W)``."""
    tensors = [_to_chw_tensor(item, size) for item in images]
    if not tensors:
        raise ValueError("No images given.")
    return torch.stack(tensors)


def _as_list(inputs) -> list:
    if isinstance(inputs, (str, os.PathLike)):
        return [inputs]
    if isinstance(inputs, torch.Tensor):
        return [inputs] if inputs.dim() == 3 else list(inputs)
    if isinstance(inputs, np.ndarray):
        return [inputs] if inputs.ndim == 3 else list(inputs)
    return list(inputs)


class FeatureExtractor:
    """Turn images into L2-normalised features, in batches.

    Args:
        model_or_cfg: an eval-ready model, a ``CfgNode``, a YAML config path, or a training
            output folder / checkpoint file (see :func:`load_model`).
        device: ``"cpu"``, ``"cuda"``, ... (default: the model's device, or ``MODEL.DEVICE``).
        batch_size: images per forward pass.
        size: ``(H, W)`` input size; default ``INPUT.SIZE_TEST`` of the config (256x128 when
            only a model without config is given).
        normalize: L2-normalise the features (default True).

    Calling it with a path, an ``(H, W, 3)`` uint8 RGB array, a ``(3, H, W)`` / ``(B, 3, H, W)``
    0-255 tensor, or a list of those returns a ``(N, D)`` float32 CPU tensor.
    """

    def __init__(
        self,
        model_or_cfg: Union[nn.Module, CfgNode, str, os.PathLike],
        device: Optional[Union[str, torch.device]] = None,
        batch_size: int = 64,
        size: Optional[Sequence[int]] = None,
        normalize: bool = True,
    ) -> None:
        if isinstance(model_or_cfg, nn.Module):
            model = model_or_cfg
            if device is not None:
                model = model.to(resolve_device(device))
        elif isinstance(model_or_cfg, CfgNode):
            model, cfg = build_inference_model(model_or_cfg, device)
        else:
            path = Path(model_or_cfg)
            if path.suffix in (".yml", ".yaml"):
                model = build_model_from_config(path, device=device)
            else:
                model = load_model(path, device=device)
        if not isinstance(model_or_cfg, CfgNode):
            cfg = getattr(model, "cfg", None)  # set by load_model / build_model_from_config
        if size is None:
            size = tuple(cfg.INPUT.SIZE_TEST) if cfg is not None else (256, 128)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.model = model.eval()
        self.device = model_device(model)
        self.batch_size = batch_size
        self.size = (int(size[0]), int(size[1]))
        self.normalize = normalize

    @torch.inference_mode()
    def __call__(self, inputs: Union[ImageInput, Iterable[ImageInput]]) -> torch.Tensor:
        """Features ``(N, D)`` of ``inputs`` (one image or many), in input order."""
        items = _as_list(inputs)
        outputs = []
        starts = range(0, len(items), self.batch_size)
        for start in progress_bar(starts, total=len(starts), desc="Extracting features"):
            batch = preprocess_images(items[start : start + self.batch_size], self.size)
            features = self.model(batch.to(self.device)).float()
            if self.normalize:
                features = F.normalize(features, dim=1)
            outputs.append(features.cpu())
        if not outputs:
            raise ValueError("FeatureExtractor got no images.")
        return torch.cat(outputs)
