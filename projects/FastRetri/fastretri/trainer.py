"""RetriTrainer: DefaultTrainer whose test sets are evaluated with RetriEvaluator."""

from __future__ import annotations

from typing import Any, Optional, Tuple

from fastreid.config import CfgNode
from fastreid.data import build_reid_test_loader, build_reid_train_loader
from fastreid.data.datasets import DATASET_REGISTRY, resolve_datasets_root
from fastreid.data.transforms import build_transforms
from fastreid.engine import DefaultTrainer
from fastreid.utils import comm
from projects.FastCls.fastcls.data import ItemDataset

from .evaluator import RetriEvaluator

__all__ = ["RetriTrainer"]


class RetriTrainer(DefaultTrainer):
    """Training as the core does it (CE on the training classes); evaluation by retrieval.

    Loaders read images from files and from idx files (Fashion-MNIST). ``TEST.EVALUATOR``
    defaults to ``RetriEvaluator`` here (the core's default is re-ID's).
    """

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
        dataset = DATASET_REGISTRY.get(dataset_name)(
            root=resolve_datasets_root(cfg.DATASETS.ROOT), verbose=comm.is_main_process()
        )
        items, num_query = dataset.test_items()
        test_set = ItemDataset(
            items,
            build_transforms(cfg, is_train=False, to_float=False),
            relabel=False,
            skip_corrupt=cfg.DATALOADER.SKIP_CORRUPT,
        )
        test_set.source, test_set.dataset_name = dataset, dataset_name
        return build_reid_test_loader(
            test_set=test_set,
            test_batch_size=cfg.TEST.IMS_PER_BATCH,
            num_query=num_query,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )

    @classmethod
    def build_evaluator(
        cls, cfg: CfgNode, dataset_name: str, output_dir: Optional[str] = None
    ) -> Tuple[Any, Any]:
        if cfg.TEST.EVALUATOR != "ReidEvaluator":  # a user's choice wins
            return super().build_evaluator(cfg, dataset_name, output_dir)
        data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
        evaluator = RetriEvaluator.from_test_set(
            cfg,
            test_set=data_loader.dataset,
            num_query=num_query,
            dataset_name=dataset_name,
            output_dir=output_dir,
        )
        return data_loader, evaluator
