"""ClsTrainer: DefaultTrainer with class-labelled datasets, idx2class.json and ClsEvaluator."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, List, Tuple

from fastreid.config import CfgNode
from fastreid.data import build_reid_test_loader, build_reid_train_loader
from fastreid.engine import DefaultTrainer
from fastreid.utils import comm
from fastreid.utils.errors import BadInputError
from fastreid.utils.file_io import atomic_write_text

from .data import ClsDataset

__all__ = ["ClasTrainer", "ClsTrainer", "IDX2CLASS_FILE", "load_idx2class", "save_idx2class"]

logger = logging.getLogger("fastreid")

IDX2CLASS_FILE = "idx2class.json"


def save_idx2class(class_names: List[str], folder: str) -> str:
    """Write ``{"0": name0, "1": name1, ...}`` (FastReID's idx2class.json) into ``folder``."""
    path = os.path.join(folder, IDX2CLASS_FILE)
    os.makedirs(folder, exist_ok=True)
    text = json.dumps({str(i): n for i, n in enumerate(class_names)}, indent=1, ensure_ascii=False)
    atomic_write_text(path, text + "\n")
    return path


def load_idx2class(path: str) -> List[str]:
    """Class names by index from an idx2class.json (a file, or the folder holding it)."""
    if os.path.isdir(path):
        path = os.path.join(path, IDX2CLASS_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            mapping = json.load(f)
    except OSError as e:
        raise FileNotFoundError(
            f"Cannot read {path}: {e.strerror or e}. Training writes idx2class.json next to the "
            "checkpoints; keep it beside the model you load."
        ) from e
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path} is not valid JSON ({e}); re-copy it from the training run."
        ) from None
    try:
        indices = sorted(int(k) for k in mapping)
    except (TypeError, ValueError, AttributeError):
        raise ValueError(f'{path} must map class indices to names, e.g. {{"0": "ants"}}.') from None
    if indices != list(range(len(indices))):
        raise ValueError(f"{path} must have the indices 0..{len(indices) - 1}, got {indices[:10]}.")
    return [str(mapping[str(i)] if str(i) in mapping else mapping[i]) for i in indices]


def _class_names_of(datasets: List[Any], items: List[tuple]) -> List[str]:
    if len(datasets) == 1 and getattr(datasets[0], "classes", None):
        return list(datasets[0].classes)  # the dataset's own label order (Fashion-MNIST's)
    return sorted({str(item[1]) for item in items})


class ClsTrainer(DefaultTrainer):
    """Image classification: ``DATASETS.NAMES`` give the training split (items
    ``(path, class_name, camid)``), ``DATASETS.TESTS`` the test split (``test_items()``).
    ``TEST.EVALUATOR`` defaults to ``ClsEvaluator`` here (:meth:`add_config`; the core's
    default is re-ID's).

    The class order is fixed by the training set and written to ``OUTPUT_DIR/idx2class.json``
    when the training loader is built; every test loader reads it back from there (training)
    or from the folder of ``MODEL.WEIGHTS`` (evaluation of a trained model). No state is
    kept on the class between the two.
    """

    @classmethod
    def add_config(cls, cfg: CfgNode) -> None:
        cfg.TEST.EVALUATOR = "ClsEvaluator"  # the core's default is re-ID's

    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> Any:
        def make_train_set(items: List[tuple], transform: Any, datasets: List[Any]) -> ClsDataset:
            return ClsDataset(
                items,
                transform,
                _class_names_of(datasets, items),
                skip_corrupt=cfg.DATALOADER.SKIP_CORRUPT,
            )

        loader = build_reid_train_loader(cfg, train_set_factory=make_train_set)
        if comm.is_main_process() and cfg.OUTPUT_DIR:
            path = save_idx2class(loader.dataset.class_names, cfg.OUTPUT_DIR)
            logger.info(f"Class names saved to {path}")
        comm.synchronize()  # the other processes' test loaders read the file
        return loader

    @classmethod
    def auto_scale_hyperparams(cls, cfg: CfgNode, num_classes: int) -> CfgNode:
        given = cfg.MODEL.HEADS.NUM_CLASSES
        if given not in (0, num_classes):
            # A classifier of another width fails later in the loss (a target out of range)
            # or in the evaluator; say so before training.
            raise BadInputError(
                f"MODEL.HEADS.NUM_CLASSES={given} but the training data "
                f"({', '.join(cfg.DATASETS.NAMES)}) has {num_classes} classes; set "
                f"MODEL.HEADS.NUM_CLASSES {num_classes}, or 0 to take it from the data."
            )
        return super().auto_scale_hyperparams(cfg, num_classes)

    @classmethod
    def resolve_class_names(cls, cfg: CfgNode) -> List[str]:
        """The training class order: idx2class.json in OUTPUT_DIR (written by this run's
        training loader), else next to MODEL.WEIGHTS."""
        folders = [cfg.OUTPUT_DIR] if cfg.OUTPUT_DIR else []
        folders += [os.path.dirname(cfg.MODEL.WEIGHTS)] if cfg.MODEL.WEIGHTS else []
        for folder in folders:
            if os.path.isfile(os.path.join(folder or ".", IDX2CLASS_FILE)):
                return load_idx2class(os.path.join(folder or ".", IDX2CLASS_FILE))
        raise FileNotFoundError(
            f"No {IDX2CLASS_FILE} in {' or '.join(repr(f) for f in folders) or 'any folder'}: "
            "evaluation needs the class order of training. Keep the idx2class.json training "
            "wrote next to the checkpoint you pass as MODEL.WEIGHTS."
        )

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str) -> Tuple[Any, int]:
        class_names = cls.resolve_class_names(cfg)
        return build_reid_test_loader(
            cfg,
            dataset_name,
            test_set_factory=lambda items, transform, _: ClsDataset(
                items,
                transform,
                class_names,
                skip_corrupt=cfg.DATALOADER.SKIP_CORRUPT,
                for_evaluation=True,
            ),
            all_queries=True,
        )


# FastReID's name for the trainer.
ClasTrainer = ClsTrainer
