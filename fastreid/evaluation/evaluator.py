"""The evaluator interface and the loop that feeds a model's features to an evaluator."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

from fastreid.utils import comm
from fastreid.utils.progress import progress_bar
from fastreid.utils.registry import Registry

__all__ = [
    "EVALUATOR_REGISTRY",
    "DatasetEvaluator",
    "DatasetEvaluators",
    "GatheringEvaluator",
    "inference_on_dataset",
    "drop_unreadable",
    "readable_rows",
    "warn_dropped",
]

logger = logging.getLogger(__name__)

EVALUATOR_REGISTRY = Registry("EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = """Evaluators by class name (``ReidEvaluator``, ...).

``TEST.EVALUATOR`` names the one ``DefaultTrainer.build_evaluator`` builds, through the
class's ``from_test_set(cfg, test_set=..., num_query=..., dataset_name=..., output_dir=...)``
(default: ``Evaluator(cfg, num_query, output_dir)``).
"""


def readable_rows(inputs: Dict, batch_size: int) -> torch.Tensor:
    """``(B,)`` bool on the CPU: False for the images a test set marked unreadable (its
    ``corrupt`` flag, with ``DATALOADER.SKIP_CORRUPT``); all True for batches without it.
    Evaluators leave those rows out of their metrics."""
    corrupt = inputs.get("corrupt") if isinstance(inputs, dict) else None
    if corrupt is None:
        return torch.ones(batch_size, dtype=torch.bool)
    return ~torch.as_tensor(corrupt, dtype=torch.bool).reshape(-1).cpu()


def warn_dropped(dataset_name: str, dropped: int, detail: str = "") -> None:
    """Say (once per evaluation) that ``dropped`` unreadable images were left out."""
    if dropped:
        logger.warning(
            "Dropped %d unreadable images from the evaluation%s (%sDATALOADER.SKIP_CORRUPT): "
            "the metrics cover the readable images only.",
            dropped,
            f" of {dataset_name}" if dataset_name else "",
            f"{detail}; " if detail else "",
        )


def drop_unreadable(
    readable: torch.Tensor, num_query: int, *tensors: torch.Tensor
) -> Tuple[List[torch.Tensor], int]:
    """The rows of ``tensors`` whose images were readable (``readable``, (N,) bool) and the
    number of readable queries (the first ``num_query`` rows are queries; ``num_query == N``
    is self-retrieval). Says how many were dropped, queries and gallery apart."""
    if bool(readable.all()):
        return list(tensors), num_query
    dropped = int((~readable).sum())
    in_query = int((~readable[:num_query]).sum())
    gallery = num_query < len(readable)
    warn_dropped("", dropped, f"{in_query} query, {dropped - in_query} gallery" if gallery else "")
    return [t[readable] for t in tensors], num_query - in_query


class DatasetEvaluator:
    """Accumulates model outputs over a dataset and turns them into metrics.

    ``reset()`` before a pass, ``process(inputs, outputs)`` once per batch and ``evaluate()``
    at the end, which returns an ``OrderedDict`` of named floats (percentages for rank
    metrics) with a ``metric`` entry (higher is better; it chooses model_best). In
    distributed runs ``evaluate`` gathers what every process saw.
    """

    @classmethod
    def from_test_set(
        cls,
        cfg: Any,
        *,
        test_set: Any,
        num_query: int,
        dataset_name: str,
        output_dir: Optional[str] = None,
    ) -> DatasetEvaluator:
        """How ``DefaultTrainer.build_evaluator`` builds this evaluator for one test set.

        ``test_set`` is the test loader's dataset (a ``CommDataset``: ``img_items`` and
        ``source``, the registered dataset object, for evaluators that need more than the
        batches, e.g. the pair labels of a verification set). Default:
        ``cls(cfg, num_query, output_dir)``; override when the constructor differs.
        """
        return cls(cfg, num_query, output_dir)

    def reset(self) -> None:
        """Forget everything seen so far."""

    def process(self, inputs: Dict, outputs: torch.Tensor) -> None:
        """Record one batch: ``inputs`` is the loader's batch dict, ``outputs`` (B, D)."""

    def evaluate(self) -> OrderedDict[str, float]:
        """Metrics over every batch processed since the last ``reset``."""
        raise NotImplementedError


class GatheringEvaluator(DatasetEvaluator):
    """The base of the evaluators that keep per-batch tensors: the gathering across processes
    is written once, here.

    ``process`` stores named tensors with :meth:`keep` (detached, on the CPU). ``evaluate``
    gathers them onto the main process once (each name concatenated in rank order: the test
    loaders give each process a contiguous shard, so that is the loader's order) and returns
    :meth:`compute` of them; the other processes return an empty dict.
    """

    def reset(self) -> None:
        self._kept: Dict[str, List[torch.Tensor]] = {}

    @property
    def kept(self) -> Dict[str, List[torch.Tensor]]:
        """This process's kept tensors by name, one per processed batch."""
        if not hasattr(self, "_kept"):
            self.reset()
        return self._kept

    def keep(self, **tensors: torch.Tensor) -> None:
        """Store one batch's tensors by name (e.g. ``keep(features=..., targets=...)``)."""
        for name, tensor in tensors.items():
            self.kept.setdefault(name, []).append(torch.as_tensor(tensor).detach().cpu())

    def gathered(self) -> Optional[Dict[str, torch.Tensor]]:
        """Every process's kept tensors, concatenated by name, on the main process; None on the
        others. Names no process kept are absent."""
        kept = self.kept
        if comm.get_world_size() > 1:
            comm.synchronize()
            ranks = comm.gather(kept, dst=0)
            if not comm.is_main_process():
                return None
            names = list(dict.fromkeys(name for rank in ranks for name in rank))
            kept = {name: [t for rank in ranks for t in rank.get(name, [])] for name in names}
        return {name: torch.cat(parts) for name, parts in kept.items() if parts}

    def evaluate(self) -> OrderedDict[str, float]:
        collected = self.gathered()
        if collected is None:
            return OrderedDict()
        if not collected:
            raise RuntimeError(
                f"{type(self).__name__}.evaluate() called before any process() call."
            )
        return self.compute(collected)

    def compute(self, collected: Dict[str, torch.Tensor]) -> OrderedDict[str, float]:
        """The metrics of the gathered tensors (main process only)."""
        raise NotImplementedError


class DatasetEvaluators(DatasetEvaluator):
    """Runs several evaluators on the same pass and merges their results."""

    def __init__(self, evaluators: List[DatasetEvaluator]) -> None:
        self._evaluators = list(evaluators)

    def reset(self) -> None:
        for evaluator in self._evaluators:
            evaluator.reset()

    def process(self, inputs: Dict, outputs: torch.Tensor) -> None:
        for evaluator in self._evaluators:
            evaluator.process(inputs, outputs)

    def evaluate(self) -> OrderedDict[str, float]:
        results: OrderedDict[str, float] = OrderedDict()
        for evaluator in self._evaluators:
            for key, value in (evaluator.evaluate() or {}).items():
                if key in results:
                    raise KeyError(f"Two evaluators both report '{key}'; rename one of them.")
                results[key] = value
        return results


def _model_device(model: nn.Module) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _to_device(batch: Dict, device: torch.device) -> Dict:
    return {
        key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
    }


def inference_on_dataset(
    model: nn.Module,
    data_loader: Iterable[Dict],
    evaluator: DatasetEvaluator,
    flip_test: bool = False,
) -> OrderedDict[str, float]:
    """Run ``model`` over ``data_loader`` and return ``evaluator.evaluate()``.

    The model runs in eval mode under ``torch.no_grad`` (its previous mode is restored).
    Each batch is a dict with ``images`` (B, 3, H, W); the model returns features (B, D).
    With ``flip_test`` the features of each image and of its horizontal mirror are averaged.
    A progress bar is shown on the main process and the throughput is logged.
    """
    num_batches: Optional[int]
    try:
        num_batches = len(data_loader)  # type: ignore[arg-type]
    except TypeError:
        num_batches = None
    device = _model_device(model)
    evaluator.reset()

    was_training = model.training
    model.eval()
    num_images = 0
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for batch in progress_bar(data_loader, total=num_batches, desc="Inference"):
                if "images" not in batch:
                    raise KeyError(
                        "inference_on_dataset expects batches as dicts with an 'images' tensor "
                        f"(B, 3, H, W); got keys {sorted(batch)}."
                    )
                inputs = _to_device(batch, device)
                outputs = model(inputs)
                if flip_test:
                    flipped = dict(inputs, images=inputs["images"].flip(dims=[3]))
                    outputs = (outputs + model(flipped)) / 2
                evaluator.process(batch, outputs)
                num_images += int(batch["images"].shape[0])
    finally:
        model.train(was_training)

    elapsed = time.perf_counter() - start
    total_images = sum(comm.all_gather(num_images)) if comm.get_world_size() > 1 else num_images
    logger.info(
        "Inference on %d images took %.2f s (%.1f images/s%s).",
        total_images,
        elapsed,
        total_images / max(elapsed, 1e-9),
        ", flip test" if flip_test else "",
    )
    results = evaluator.evaluate()
    # An evaluator may return None on non-main processes; callers always get a dict.
    return results if results is not None else OrderedDict()
