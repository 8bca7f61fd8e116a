"""FaceTrainer: DefaultTrainer with the insightface training set, pair-set evaluation and
PartialFC (a second optimizer and LR schedule for the sharded class centres, saved per
process next to every checkpoint), wired through the core's trainer seams."""

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
from fastreid.engine import DefaultTrainer, ExtraOptimizer
from fastreid.engine.train_loop import SimpleTrainer
from fastreid.utils import comm
from fastreid.utils.checkpoint import Checkpointer

from .config import add_face_config
from .datasets import VERIFICATION_SETS, PairImageDataset, RecFaceDataset
from .partial_fc import PartialFC, load_fastreid_shard
from .verification import FaceEvaluator

__all__ = [
    "FaceTrainer",
    "MaxClipGradScaler",
    "PFCStepTrainer",
    "build_partial_fc",
    "resolve_rec_path",
]

logger = logging.getLogger("fastreid")


def resolve_rec_path(cfg: CfgNode) -> str:
    """``DATASETS.REC_PATH``; a relative path is taken under the datasets root
    (``DATASETS.ROOT``, else ``$FASTREID_DATASETS``, else ``datasets``). Empty stays empty."""
    from fastreid.data.datasets import resolve_datasets_root

    rec = os.path.expanduser(cfg.DATASETS.REC_PATH)
    if not rec or os.path.isabs(rec):
        return rec
    return os.path.join(resolve_datasets_root(cfg.DATASETS.ROOT), rec)


def build_partial_fc(cfg: CfgNode) -> PartialFC:
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


class MaxClipGradScaler(torch.amp.GradScaler):
    """FastReID's fp16 grad scaler for PartialFC: a GradScaler whose scale never grows past
    ``max_scale`` (FastReID: start at the per-process batch size, cap at 128 times it)."""

    def __init__(self, device: str = "cuda", *, max_scale: float, **kwargs: Any) -> None:
        super().__init__(device, **kwargs)
        self.max_scale = float(max_scale)

    def update(self, new_scale: Optional[Any] = None) -> None:
        super().update(new_scale)
        if self.is_enabled() and self._scale is not None:
            self._scale.clamp_(max=self.max_scale)


class PFCStepTrainer(SimpleTrainer):
    """One step with PartialFC: model -> (embeddings, labels) -> PartialFC loss over the
    global batch -> backward -> backbone and centre optimizers -> centres written back.

    ``autocast``: ``(device_type, dtype)`` to run the model under autocast (the centre
    logits stay float32); ``grad_scaler`` for CUDA float16; ``clip_norm`` > 0 clips the
    model's gradient (after unscaling) at that L2 norm.
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
        clip_norm: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, data_loader, optimizer, **kwargs)
        self.pfc = pfc
        self.pfc_optimizer = pfc_optimizer
        self.autocast = autocast
        self.grad_scaler = grad_scaler
        self.clip_norm = float(clip_norm)

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
        if self.clip_norm > 0:  # FastReID: the model's gradient (not the centres') at norm 5
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
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


class FaceTrainer(DefaultTrainer):
    """DefaultTrainer for faces.

    * Training data: ``DATASETS.REC_PATH`` (insightface ``.rec``) when set, else
      ``DATASETS.NAMES`` through the core loader (e.g. ``FaceFolder``).
    * ``MODEL.HEADS.NUM_CLASSES`` must be 0 (taken from the data) or the data's identity count.
    * Tests: the pair sets of ``DATASETS.TESTS`` with :class:`FaceEvaluator`.
    * ``MODEL.HEADS.PFC.ENABLED``: PartialFC through the core seams. The centres get their own
      SGD (SOLVER.BASE_LR, MOMENTUM, WEIGHT_DECAY, NESTEROV) and LR schedule (the SOLVER
      curve), an extra optimizer named ``pfc`` (lr logged as ``lr_pfc``); the step is
      :class:`PFCStepTrainer`; the shard, its optimizer and schedule are saved by every
      process in ``<checkpoint>_rank{r}.pth`` and restored by ``resume``.
    """

    pfc: Optional[PartialFC] = None

    @classmethod
    def add_config(cls, cfg: CfgNode) -> None:
        add_face_config(cfg)

    @classmethod
    def evaluate_weights(cls, cfg: CfgNode) -> Any:
        """Test MODEL.WEIGHTS on the pair sets. Evaluation needs only the embedding: the
        model is built without a classifier, whatever the checkpoint holds."""
        cfg = cfg.clone()
        cfg.defrost()
        cfg.MODEL.BACKBONE.PRETRAIN = False
        cfg.MODEL.HEADS.PFC.ENABLED = True
        cfg.freeze()
        if not cfg.MODEL.WEIGHTS:
            logging.getLogger("fastreid").warning(
                "--eval-only without MODEL.WEIGHTS evaluates a randomly initialised model."
            )
        model = cls.build_model(cfg)
        Checkpointer(model, save_dir=cfg.OUTPUT_DIR).load(cfg.MODEL.WEIGHTS)
        return cls.test(cfg, model)

    @classmethod
    def build_extra_optimizers(
        cls, cfg: CfgNode, model: nn.Module, iters_per_epoch: int
    ) -> Dict[str, ExtraOptimizer]:
        if not cfg.MODEL.HEADS.PFC.ENABLED:
            return {}
        if str(cfg.SOLVER.OPT) != "SGD":
            raise ValueError(
                f"PartialFC trains its centres with SGD; SOLVER.OPT is {cfg.SOLVER.OPT}. Set "
                "SOLVER.OPT SGD or MODEL.HEADS.PFC.ENABLED False."
            )
        pfc = build_partial_fc(cfg)
        if cfg.MODEL.HEADS.PFC.WEIGHTS:
            loaded = load_fastreid_shard(pfc, cfg.MODEL.HEADS.PFC.WEIGHTS)
            logger.info(f"PartialFC centres loaded from FastReID's shard {loaded}")
        logger.info(f"PartialFC: {pfc}")
        opt = pfc.build_optimizer(
            cfg.SOLVER.BASE_LR,
            cfg.SOLVER.MOMENTUM,
            cfg.SOLVER.WEIGHT_DECAY,
            bool(cfg.SOLVER.NESTEROV),
        )
        sched = cls.build_lr_scheduler(cfg, opt, iters_per_epoch)
        # The shard is checkpointed as "pfc" beside its optimizer and schedule, per process.
        return {"pfc": ExtraOptimizer(opt, sched, per_rank=True, module=pfc)}

    def build_step_trainer(
        self, cfg: CfgNode, model: nn.Module, data_loader: Any, optimizer: torch.optim.Optimizer
    ) -> SimpleTrainer:
        extra = self.extra_optimizers.get("pfc")
        if extra is None:
            return super().build_step_trainer(cfg, model, data_loader, optimizer)
        self.pfc = extra.module
        # The default step (SimpleTrainer / AMPTrainer) gives the autocast and scaler settings.
        default = super().build_step_trainer(cfg, model, data_loader, optimizer)
        scaler = default.grad_scaler
        if scaler is not None and scaler.is_enabled() and cfg.MODEL.HEADS.PFC.MAX_CLIP_SCALER:
            batch = max(1, cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size())
            scaler = MaxClipGradScaler(
                scaler._device, init_scale=batch, max_scale=128.0 * batch, growth_interval=100
            )
        return PFCStepTrainer(
            model,
            data_loader,
            optimizer,
            self.pfc,
            extra.optimizer,
            autocast=default.autocast,
            grad_scaler=scaler,
            clip_norm=cfg.MODEL.HEADS.PFC.CLIP_NORM,
            grad_clipper=default.grad_clipper,
            log_period=default.log_period,
            data_seed=default.data_stream.seed,
        )

    # -- data ---------------------------------------------------------------------------------
    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> Any:
        rec = resolve_rec_path(cfg)
        if not rec:
            return super().build_train_loader(cfg)
        logger.info(f"Prepare training set {rec}")
        train_set = RecFaceDataset(
            rec,
            build_transforms(cfg, is_train=True, to_float=False),
            skip_corrupt=cfg.DATALOADER.SKIP_CORRUPT,
        )
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
            source = resolve_rec_path(cfg) or ", ".join(cfg.DATASETS.NAMES)
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
