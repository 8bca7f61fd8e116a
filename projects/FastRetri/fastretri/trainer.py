"""RetriTrainer: DefaultTrainer whose test sets are evaluated with RetriEvaluator."""

from __future__ import annotations

from typing import Any, Tuple

from fastreid.config import CfgNode
from fastreid.data import build_reid_train_loader
from fastreid.data.datasets import DATASET_REGISTRY, resolve_datasets_root
from fastreid.data.transforms import build_transforms
from fastreid.engine import DefaultTrainer
from fastreid.utils import comm

from ...FastCls.fastcls.data import ItemDataset, build_item_test_loader
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
        root = resolve_datasets_root(cfg.DATASETS.ROOT)
        items = []
        for name in cfg.DATASETS.NAMES:
            dataset = DATASET_REGISTRY.get(name)(
                root=root, combineall=cfg.DATASETS.COMBINEALL, verbose=comm.is_main_process()
            )
            items.extend(dataset.train)
        train_set = ItemDataset(
            items,
            build_transforms(cfg, is_train=True, to_float=False),
            relabel=True,
            skip_corrupt=cfg.DATALOADER.SKIP_CORRUPT,
        )
        return build_reid_train_loader(cfg, train_set=train_set)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str) -> Tuple[Any, int]:
        return build_item_test_loader(
            cfg,
            dataset_name,
            lambda items, transform: ItemDataset(
                items, transform, relabel=False, skip_corrupt=cfg.DATALOADER.SKIP_CORRUPT
            ),
        )
