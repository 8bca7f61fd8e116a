"""AttrTrainer: DefaultTrainer with attribute data, the positive ratios and AttrEvaluator."""

from __future__ import annotations

import logging
from typing import Any, List

from fastreid.config import CfgNode
from fastreid.data import build_reid_train_loader
from fastreid.data.common import CommDataset
from fastreid.data.datasets import DATASET_REGISTRY, resolve_datasets_root
from fastreid.engine import DefaultTrainer
from fastreid.modeling.compat import num_classes_in_checkpoint
from fastreid.utils import comm

from .config import add_attr_config
from .datasets import AttrDataset, check_same_attributes, positive_ratios
from .datasets.market_attr import MarketAttrLayout

__all__ = ["AttrTrainer", "build_attribute_datasets", "set_num_attributes"]

logger = logging.getLogger("fastreid")


def check_attribute_dataset(name: str, dataset: Any) -> AttrDataset:
    """``dataset`` (registered as ``name``) if it is an attribute dataset; else one error."""
    if not isinstance(dataset, AttrDataset):
        raise ValueError(
            f"{name} is not an attribute dataset; FastAttr trains and tests on PA100K, "
            "Market1501Attr, DukeMTMCAttr, SyntheticAttr or another AttrDataset."
        )
    return dataset


def build_attribute_datasets(cfg: CfgNode, names: List[str], **kwargs: Any) -> List[AttrDataset]:
    """The registered datasets ``names``, each checked to be an attribute dataset."""
    datasets = []
    for name in names:
        cls = DATASET_REGISTRY.get(name)
        extra = dict(kwargs)
        if issubclass(cls, MarketAttrLayout):  # per-identity .mat files with multi-class fields
            extra.setdefault("multi_class", cfg.DATASETS.ATTR_MULTI_CLASS)
        dataset = cls(
            root=resolve_datasets_root(cfg.DATASETS.ROOT), verbose=comm.is_main_process(), **extra
        )
        datasets.append(check_attribute_dataset(name, dataset))
    return datasets


def set_num_attributes(cfg: CfgNode, count: int, source: str) -> CfgNode:
    """Make ``MODEL.HEADS.NUM_CLASSES`` the attribute count, saying so when it changes."""
    with cfg.unfrozen():
        if cfg.MODEL.HEADS.NUM_CLASSES != count:
            if cfg.MODEL.HEADS.NUM_CLASSES:
                logger.warning(
                    f"MODEL.HEADS.NUM_CLASSES={cfg.MODEL.HEADS.NUM_CLASSES} but {source} has {count} "
                    f"attributes: using MODEL.HEADS.NUM_CLASSES={count}."
                )
            else:
                logger.info(f"MODEL.HEADS.NUM_CLASSES={count} (the attribute count of {source}).")
            cfg.MODEL.HEADS.NUM_CLASSES = count
    return cfg


class AttrTrainer(DefaultTrainer):
    """Trains an attribute model: merges the training sets of ``DATASETS.NAMES`` (their
    attribute names must agree), sets the model's positive ratios from them when
    ``MODEL.LOSSES.BCE.WEIGHT_ENABLED``, and sizes the head to the attribute count."""

    def __init__(self, cfg: CfgNode) -> None:
        super().__init__(cfg)
        if self.cfg.MODEL.LOSSES.BCE.WEIGHT_ENABLED:
            model = getattr(self.model, "module", self.model)  # unwrap DDP
            model.set_positive_ratios(positive_ratios(self.data_loader.dataset.img_items))

    @classmethod
    def add_config(cls, cfg: CfgNode) -> None:
        add_attr_config(cfg)

    @classmethod
    def evaluate_weights(cls, cfg: CfgNode) -> Any:
        """Test MODEL.WEIGHTS on DATASETS.TESTS, the head sized to the first test set."""
        cfg = cfg.clone()
        first = cfg.DATASETS.TESTS[0]
        count = len(build_attribute_datasets(cfg, [first])[0].attribute_names)
        if cfg.MODEL.WEIGHTS:
            trained = num_classes_in_checkpoint(cfg.MODEL.WEIGHTS)
            if trained and trained != count:
                raise ValueError(
                    f"MODEL.WEIGHTS {cfg.MODEL.WEIGHTS} predicts {trained} attributes but "
                    f"{first} has {count}; evaluate it on the kind of dataset it was trained on "
                    "(FastReID's Market1501-attribute models have 27 outputs, one for age: set "
                    "DATASETS.ATTR_MULTI_CLASS fastreid)."
                )
        set_num_attributes(cfg, count, first)
        return super().evaluate_weights(cfg)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> Any:
        logger.info("Prepare training set")

        def make_train_set(items: List[tuple], transform: Any, datasets: List[Any]) -> Any:
            for name, dataset in zip(cfg.DATASETS.NAMES, datasets):
                check_attribute_dataset(name, dataset)
            train_set = CommDataset(
                items, transform, relabel=True, skip_corrupt=cfg.DATALOADER.SKIP_CORRUPT
            )
            train_set.attribute_names = check_same_attributes(datasets)
            return train_set

        return build_reid_train_loader(cfg, train_set_factory=make_train_set)

    @classmethod
    def auto_scale_hyperparams(cls, cfg: CfgNode, num_classes: int) -> CfgNode:
        return set_num_attributes(
            cfg, int(num_classes), f"DATASETS.NAMES {tuple(cfg.DATASETS.NAMES)}"
        )
