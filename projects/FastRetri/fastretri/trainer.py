"""RetriTrainer: DefaultTrainer whose test sets are evaluated with RetriEvaluator."""

from __future__ import annotations

from typing import Any, Tuple

from fastreid.config import CfgNode
from fastreid.data import ItemDataset, build_reid_test_loader, build_reid_train_loader
from fastreid.engine import DefaultTrainer

from .config import add_retri_config

__all__ = ["RetriTrainer"]


class RetriTrainer(DefaultTrainer):
    """Training as the core does it (CE on the training classes); evaluation by retrieval.

    Loaders read images from files and from idx files (Fashion-MNIST). ``TEST.EVALUATOR``
    defaults to ``RetriEvaluator`` here (``add_retri_config``; the core's default is re-ID's).
    """

    @classmethod
    def add_config(cls, cfg: CfgNode) -> None:
        add_retri_config(cfg)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> Any:
        return build_reid_train_loader(cfg, dataset_class=ItemDataset)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str) -> Tuple[Any, int]:
        return build_reid_test_loader(cfg, dataset_name, dataset_class=ItemDataset)
