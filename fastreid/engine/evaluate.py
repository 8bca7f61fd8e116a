"""Evaluation as the trainer runs it: the test sets of ``DATASETS.TESTS``, each with the loader
and evaluator a trainer class builds (:meth:`DefaultTrainer.build_evaluator`)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Optional, Tuple

from torch import nn

from fastreid.config import CfgNode
from fastreid.utils import comm

__all__ = ["build_loader_and_evaluator", "check_test_sets", "evaluate_test_sets"]


def build_loader_and_evaluator(
    trainer_cls: Any, cfg: CfgNode, dataset_name: str, output_dir: Optional[str]
) -> Tuple[Any, Any]:
    """``(data_loader, evaluator)`` of ``dataset_name`` from ``trainer_cls.build_evaluator``
    (an override may return the evaluator alone; the loader then comes from
    ``build_test_loader``). Raises ``NotImplementedError`` when there is no evaluator."""
    built = trainer_cls.build_evaluator(cfg, dataset_name, output_dir=output_dir)
    if isinstance(built, tuple):
        return built
    data_loader, _ = trainer_cls.build_test_loader(cfg, dataset_name)
    return data_loader, built


def check_test_sets(trainer_cls: Any, cfg: CfgNode) -> None:
    """Build the loader and evaluator of every ``DATASETS.TESTS`` entry once, before training,
    and let each evaluator check its test set (``check_test_set(test_set, dataset_name)``)."""
    for dataset_name in cfg.DATASETS.TESTS:
        try:
            data_loader, evaluator = build_loader_and_evaluator(
                trainer_cls, cfg, dataset_name, None
            )
        except NotImplementedError:
            continue  # evaluate_test_sets warns about it
        check = getattr(evaluator, "check_test_set", None)
        if check is not None:
            check(getattr(data_loader, "dataset", None), dataset_name)


def evaluate_test_sets(trainer_cls: Any, cfg: CfgNode, model: nn.Module) -> OrderedDict[str, Any]:
    """Evaluate ``model`` on every ``DATASETS.TESTS`` entry (see :meth:`DefaultTrainer.test`)."""
    from fastreid.evaluation import inference_on_dataset, print_csv_format

    log = logging.getLogger("fastreid")
    results: OrderedDict[str, Any] = OrderedDict()
    for dataset_name in cfg.DATASETS.TESTS:
        log.info(f"Prepare testing set {dataset_name}")
        try:
            data_loader, evaluator = build_loader_and_evaluator(
                trainer_cls, cfg, dataset_name, cfg.OUTPUT_DIR or None
            )
        except NotImplementedError:
            log.warning(f"No evaluator for {dataset_name}; implement build_evaluator() to test it.")
            results[dataset_name] = {}
            continue
        results_i = inference_on_dataset(
            model, data_loader, evaluator, flip_test=cfg.TEST.FLIP.ENABLED
        )
        if comm.is_main_process() and results_i and "metric" not in results_i:
            raise KeyError(
                f"{type(evaluator).__name__} returned no 'metric' entry for {dataset_name} "
                f"(got {sorted(results_i)}); every evaluator reports 'metric', the value "
                "model_best is chosen by."
            )
        results[dataset_name] = results_i
    if comm.is_main_process():
        printable = OrderedDict((name, res) for name, res in results.items() if res)
        if printable:
            print_csv_format(printable)
    if len(results) == 1:
        return OrderedDict(list(results.values())[0])
    return results
