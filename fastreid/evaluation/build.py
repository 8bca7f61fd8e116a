"""Building an evaluator from the config, below the engine (tools and trainers share it)."""

from __future__ import annotations

from typing import Any, Optional

from .evaluator import EVALUATOR_REGISTRY, DatasetEvaluator

__all__ = ["build_evaluator"]


def build_evaluator(
    cfg: Any,
    *,
    test_set: Any,
    num_query: int,
    dataset_name: str,
    output_dir: Optional[str] = None,
) -> DatasetEvaluator:
    """The ``TEST.EVALUATOR`` evaluator (``EVALUATOR_REGISTRY``) for one test set, built by the
    class's ``from_test_set``; ``test_set`` is the test loader's dataset."""
    evaluator_cls = EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)
    return evaluator_cls.from_test_set(
        cfg,
        test_set=test_set,
        num_query=num_query,
        dataset_name=dataset_name,
        output_dir=output_dir,
    )
