"""FaceTrainer: DefaultTrainer with the insightface training set, pair-set evaluation and
PartialFC (a second optimizer and LR schedule for the sharded class centres, saved per
process next to every checkpoint)."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from fastreid.config import CfgNode
from fastreid.data import build_reid_test_loader, build_reid_train_loader
from fastreid.data.samplers import TrainingSampler
from fastreid.data.transforms import build_transforms
from fastreid.engine.defaults import DefaultTrainer
from fastreid.engine.train_loop import HookBase, SimpleTrainer
from fastreid.utils.file_io import ensure_dir

from .datasets import VERIFICATION_SETS, PairImageDataset, RecFaceDataset
from .partial_fc import PartialFC
from .verification import FaceEvaluator

__all__ = ["FaceTrainer", "PFCStepTrainer", "build_partial_fc"]

logger = logging.getLogger("fastreid")


def build_partial_fc(cfg: CfgNode, device: Optional[torch.device] = None) -> PartialFC:
    """This process's PartialFC shard from ``MODEL.HEADS`` (NUM_CLASSES, EMBEDDING_DIM,
    CLS_LAYER, SCALE, MARGIN, PFC.SAMPLE_RATE, PFC.SEED)."""
    heads = cfg.MODEL.HEADS
    if heads.NUM_CLASSES <= 0:
        raise ValueError(
            "PartialFC needs MODEL.HEADS.NUM_CLASSES > 0 (the trainer fills it from the data when "
            "it is 0)."
        )
    dim = heads.EMBEDDING_DIM if heads.EMBEDDING_DIM > 0 else cfg.MODEL.BACKBONE.FEAT_DIM
    return PartialFC(
        heads.NUM_CLASSES,
        dim,
        sample_rate=heads.PFC.SAMPLE_RATE,
        cls_type=heads.CLS_LAYER,
        scale=heads.SCALE,
        margin=heads.MARGIN,
        seed=heads.PFC.SEED,
        device=torch.device(cfg.MODEL.DEVICE),
    )


class PFCStepTrainer(SimpleTrainer):
    """One step with PartialFC: model -> (embeddings, labels) -> PartialFC loss over the
    global batch -> backward -> backbone and centre optimizers -> centres written back.

    ``autocast``: ``(device_type, dtype)`` to run the model under autocast (the centre
    logits stay float32); ``grad_scaler`` for CUDA float16.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Any,
        optimizer: torch.optim.Optimizer,
        pfc: PartialFC,
        pfc_optimizer: torch.optim.Optimizer,
        *,
        autocast: Optional[Tuple[str, torch.dtype]] = None,
        grad_scaler: Optional[Any] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, data_loader, optimizer, **kwargs)
        self.pfc = pfc
        self.pfc_optimizer = pfc_optimizer
        self.autocast = autocast
        self.grad_scaler = grad_scaler

    def run_step(self) -> None:
        assert self.model.training, "PFCStepTrainer: the model was switched to eval mode!"
        data, data_time = self.next_batch()
        if self.autocast is not None:
            with torch.autocast(device_type=self.autocast[0], dtype=self.autocast[1]):
                out = self.model(data)
        else:
            out = self.model(data)
        if not isinstance(out, dict) or "features" not in out:
            raise TypeError(
                "With MODEL.HEADS.PFC.ENABLED the model must return {'features', 'targets'} in "
                "training (MODEL.META_ARCHITECTURE FaceBaseline)."
            )
        loss = self.pfc(out["features"], out["targets"])
        scaler = self.grad_scaler
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if scaler is not None:
            scaler.unscale_(self.optimizer)
            scaler.unscale_(self.pfc_optimizer)
        if self.grad_clipper is not None:
            self.grad_clipper(self._params)
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.step(self.pfc_optimizer)
            scaler.update()
        else:
            self.optimizer.step()
            self.pfc_optimizer.step()
        self.pfc.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.pfc_optimizer.zero_grad(set_to_none=True)
        self.record_losses({"loss_cls": loss}, loss, data_time)


class _PFCHook(HookBase):
    """Steps the centres' LR schedule every iteration and saves this process's shard
    (centres, momentum, sampler state, optimizer and schedule) whenever the model is
    checkpointed: ``OUTPUT_DIR/pfc/<checkpoint name>_rank<r>of<W>.pth``."""

    def after_step(self) -> None:
        trainer = self.trainer
        trainer.storage.put_scalar(
            "pfc_lr", trainer.pfc_optimizer.param_groups[0]["lr"], smoothing_hint=False
        )
        trainer.pfc_scheduler.step()

    def after_epoch(self) -> None:
        trainer = self.trainer
        epoch = trainer.epoch
        period = trainer.cfg.SOLVER.CHECKPOINT_PERIOD
        if epoch + 1 == trainer.max_epoch:
            trainer.save_pfc_shard("model_final")
        elif period > 0 and (epoch + 1) % period == 0:
            trainer.save_pfc_shard(f"model_{epoch:04d}")


class FaceTrainer(DefaultTrainer):
    """DefaultTrainer for faces.

    * Training data: ``DATASETS.REC_PATH`` (insightface ``.rec``) when set, else
      ``DATASETS.NAMES`` through the core loader (e.g. ``FaceFolder``).
    * ``MODEL.HEADS.NUM_CLASSES`` must be 0 (taken from the data) or the data's identity count.
    * Tests: the pair sets of ``DATASETS.TESTS`` with :class:`FaceEvaluator`.
    * ``MODEL.HEADS.PFC.ENABLED``: the step of :class:`PFCStepTrainer`; the centres get their
      own SGD (SOLVER.BASE_LR, MOMENTUM, WEIGHT_DECAY) and LR schedule (the same SOLVER curve),
      and a per-process checkpoint beside each model checkpoint; ``resume`` restores them.
    """

    def __init__(self, cfg: CfgNode) -> None:
        super().__init__(cfg)
        self.pfc: Optional[PartialFC] = None
        if not self.cfg.MODEL.HEADS.PFC.ENABLED:
            return
        cfg = self.cfg
        if str(cfg.SOLVER.OPT) != "SGD":
            raise ValueError(
                f"PartialFC trains its centres with SGD; SOLVER.OPT is {cfg.SOLVER.OPT}. Set "
                "SOLVER.OPT SGD or MODEL.HEADS.PFC.ENABLED False."
            )
        self.pfc = build_partial_fc(cfg)
        self.pfc_optimizer = self.pfc.build_optimizer(
            cfg.SOLVER.BASE_LR,
            cfg.SOLVER.MOMENTUM,
            cfg.SOLVER.WEIGHT_DECAY,
            bool(cfg.SOLVER.NESTEROV),
        )
        self.pfc_scheduler = self.build_lr_scheduler(cfg, self.pfc_optimizer, self.iters_per_epoch)
        old = self._trainer
        self._trainer = PFCStepTrainer(
            old.model,
            old.data_loader,
            old.optimizer,
            self.pfc,
            self.pfc_optimizer,
            autocast=(old.device_type, old.dtype) if hasattr(old, "dtype") else None,
            grad_scaler=getattr(old, "grad_scaler", None),
            grad_clipper=old.grad_clipper,
            log_period=old.log_period,
            data_seed=old.data_stream.seed,
        )
        self.register_hooks([_PFCHook()])
        logger.info(f"PartialFC: {self.pfc}")

    # -- per-process centre shards ---------------------------------------------------------
    def _pfc_path(self, name: str) -> str:
        pfc = self.pfc
        assert pfc is not None
        return os.path.join(
            self.cfg.OUTPUT_DIR, "pfc", f"{name}_rank{pfc.rank}of{pfc.world_size}.pth"
        )

    def pfc_state(self) -> Dict[str, Any]:
        assert self.pfc is not None
        return {
            "pfc": self.pfc.state_dict(),
            "optimizer": self.pfc_optimizer.state_dict(),
            "scheduler": self.pfc_scheduler.state_dict(),
        }

    def save_pfc_shard(self, name: str) -> str:
        """Write this process's shard for the checkpoint ``name`` (atomically)."""
        path = self._pfc_path(name)
        ensure_dir(os.path.dirname(path), what="OUTPUT_DIR/pfc")
        tmp = path + ".tmp"
        torch.save(self.pfc_state(), tmp)
        os.replace(tmp, path)
        return path

    def load_pfc_shard(self, name: str) -> None:
        path = self._pfc_path(name)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Resuming from {name} needs this process's PartialFC shard {path}; it is "
                "missing (was the run made with another process count?). Resume with the same "
                "--num-gpus, or start without --resume."
            )
        state = torch.load(path, map_location=self.pfc.weight.device, weights_only=False)
        self.pfc.load_state_dict(state["pfc"])
        self.pfc_optimizer.load_state_dict(state["optimizer"])
        self.pfc_scheduler.load_state_dict(state["scheduler"])
        logger.info(f"PartialFC shard restored from {path}")

    def resume_or_load(self, resume: bool = True) -> None:
        resuming = resume and self.checkpointer.has_checkpoint()
        name = (
            os.path.splitext(os.path.basename(self.checkpointer.get_checkpoint_file()))[0]
            if resuming
            else None
        )
        super().resume_or_load(resume)
        if self.pfc is not None and name is not None:
            self.load_pfc_shard(name)

    # -- data ---------------------------------------------------------------------------------
    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> Any:
        rec = cfg.DATASETS.REC_PATH
        if not rec:
            return super().build_train_loader(cfg)
        logger.info(f"Prepare training set {rec}")
        train_set = RecFaceDataset(rec, build_transforms(cfg, is_train=True, to_float=False))
        if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler":
            raise ValueError(
                f"DATALOADER.SAMPLER_TRAIN {cfg.DATALOADER.SAMPLER_TRAIN} needs identity lists; "
                "a .rec training set (DATASETS.REC_PATH) uses TrainingSampler."
            )
        return build_reid_train_loader(
            cfg, train_set=train_set, sampler=TrainingSampler(len(train_set))
        )

    @classmethod
    def auto_scale_hyperparams(cls, cfg: CfgNode, num_classes: int) -> CfgNode:
        want = cfg.MODEL.HEADS.NUM_CLASSES
        if want not in (0, num_classes):
            source = cfg.DATASETS.REC_PATH or ", ".join(cfg.DATASETS.NAMES)
            raise ValueError(
                f"MODEL.HEADS.NUM_CLASSES is {want} but the training data ({source}) has "
                f"{num_classes} identities; set MODEL.HEADS.NUM_CLASSES {num_classes} (or 0 to "
                "take it from the data)."
            )
        return super().auto_scale_hyperparams(cfg, num_classes)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str) -> Tuple[Any, Any]:
        """``(loader over the pair images in order, issame)`` of a registered pair set."""
        if dataset_name not in VERIFICATION_SETS:
            raise KeyError(
                f"DATASETS.TESTS entry '{dataset_name}' is not a face verification set; choose "
                f"from {', '.join(VERIFICATION_SETS)}."
            )
        from fastreid.data.datasets import resolve_datasets_root

        pairs = VERIFICATION_SETS[dataset_name](root=resolve_datasets_root(cfg.DATASETS.ROOT))
        # SIZE_TEST [0] (FastFace's "no resize") leaves no test transform at all.
        resize = any(int(s) > 0 for s in cfg.INPUT.SIZE_TEST)
        transform = build_transforms(cfg, is_train=False, to_float=False) if resize else None
        test_set = PairImageDataset(pairs, transform)
        loader, _ = build_reid_test_loader(
            test_set=test_set,
            test_batch_size=cfg.TEST.IMS_PER_BATCH,
            num_query=0,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )
        return loader, pairs.issame

    @classmethod
    def build_evaluator(
        cls, cfg: CfgNode, dataset_name: str, output_dir: Optional[str] = None
    ) -> Tuple[Any, FaceEvaluator]:
        loader, issame = cls.build_test_loader(cfg, dataset_name)
        return loader, FaceEvaluator(issame, dataset_name, output_dir)
