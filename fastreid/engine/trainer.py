"""DefaultTrainer: builds everything a run needs from a config, and is what projects subclass.

See :mod:`fastreid.engine.setup` for what runs before it (output folder, logging, seed).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from fastreid.config import CfgNode
from fastreid.modeling.compat import map_fastreid_state_dict
from fastreid.solver import build_gradient_clipper
from fastreid.utils import comm
from fastreid.utils.checkpoint import Checkpointer, unwrap_model
from fastreid.utils.env import get_rng_state, set_rng_state
from fastreid.utils.events import CommonMetricPrinter, EventWriter, JSONWriter, TensorboardXWriter
from fastreid.utils.logger import setup_logger
from fastreid.utils.precision_bn import get_bn_modules

from . import hooks
from .buffer_sync import average_buffers, wrap_ddp
from .evaluate import check_test_sets, evaluate_test_sets
from .precision import autocast_dtype
from .setup import use_available_device, write_run_config
from .train_loop import AMPTrainer, NonFiniteLossError, SimpleTrainer, TrainerBase, merge_state

__all__ = ["DefaultTrainer", "ExtraOptimizer"]

logger = logging.getLogger(__name__)


@dataclass
class ExtraOptimizer:
    """An optimizer besides the model's, returned by :meth:`DefaultTrainer.build_extra_optimizers`.

    It is stepped every iteration after the main one; ``scheduler`` (optional) is stepped by
    its own LRScheduler hook (its lr logged as ``lr_<name>``). Both are checkpointed as
    ``optimizer_<name>`` / ``scheduler_<name>``: in the main file, or with ``per_rank`` in
    each process's ``<checkpoint>_rank{r}.pth`` (state that differs per process, e.g. the
    optimizer of a sharded classifier).
    """

    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    per_rank: bool = False
    #: What the optimizer trains outside the model (e.g. a sharded classifier), or ``None``.
    #: It is checkpointed as ``<name>`` beside its optimizer (per process with ``per_rank``).
    module: Optional[nn.Module] = None


class DefaultTrainer(TrainerBase):
    """A trainer with the standard behaviour, built from a config:

    1. builds the train loader, fills ``MODEL.HEADS.NUM_CLASSES`` from it
       (:meth:`auto_scale_hyperparams`), then the model, optimizer and LR scheduler;
    2. wraps the model in DDP when several processes run;
    3. trains with :class:`SimpleTrainer` or, with ``SOLVER.AMP``, :class:`AMPTrainer`;
    4. registers the default hooks (:meth:`build_hooks`) and writers (:meth:`build_writers`);
    5. writes the final config (device, seed, class count filled in) to
       ``OUTPUT_DIR/config.yaml``, once; the run's config is not changed afterwards.

    Its ``state_dict()`` (saved in every checkpoint, restored by :meth:`resume_or_load`)
    gathers the progress, RNG states, the step's state (data seeds, grad scaler) and each
    hook's own state (e.g. the best metric of :class:`~fastreid.engine.hooks.BestCheckpointer`).

    Epoch-based like FastReID: ``iters_per_epoch = len(train images) // SOLVER.IMS_PER_BATCH``
    (the global batch); ``SOLVER.MAX_EPOCH``, ``SOLVER.CHECKPOINT_PERIOD`` and
    ``TEST.EVAL_PERIOD`` count epochs.

    Projects customise it by overriding the ``build_*`` classmethods and :meth:`test`, and
    the seams of ``__init__``: :meth:`build_extra_optimizers` (more optimizers and LR
    schedules), :meth:`build_step_trainer` (the iteration), :meth:`build_checkpointer`
    (per-process state) and :meth:`build_hooks`. A project's command line is
    ``fastreid.engine.cli.run(args, trainer_cls=ProjectTrainer)``: :meth:`add_config` adds
    its keys and :meth:`evaluate_weights` is its ``--eval-only``.
    """

    def __init__(self, cfg: CfgNode) -> None:
        super().__init__()
        if not logging.getLogger("fastreid").handlers:
            setup_logger()
        cfg = cfg.clone()
        cfg.defrost()
        use_available_device(cfg)

        data_loader = self.build_train_loader(cfg)
        cfg = self.auto_scale_hyperparams(cfg, data_loader.dataset.num_classes)
        # Every derived value is in now: from here on the run's config does not change.
        cfg.freeze()
        self.cfg = cfg
        logger.info(
            f"Derived config values: MODEL.DEVICE={cfg.MODEL.DEVICE}, SEED={cfg.SEED}, "
            f"MODEL.HEADS.NUM_CLASSES={cfg.MODEL.HEADS.NUM_CLASSES}"
        )
        self.iters_per_epoch = len(data_loader.dataset) // cfg.SOLVER.IMS_PER_BATCH
        if self.iters_per_epoch < 1:
            raise ValueError(
                f"The training set has {len(data_loader.dataset)} images, fewer than "
                f"SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH}; lower the batch size."
            )
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        self.extra_optimizers: Dict[str, ExtraOptimizer] = dict(
            self.build_extra_optimizers(cfg, model, self.iters_per_epoch)
        )
        model = self.wrap_distributed(cfg, model)
        self._trainer: SimpleTrainer = self.build_step_trainer(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer, self.iters_per_epoch)

        checkpointables: Dict[str, Any] = {"optimizer": optimizer, "scheduler": self.scheduler}
        per_rank_state: Dict[str, Any] = {}
        for name, extra in self.extra_optimizers.items():
            target = per_rank_state if extra.per_rank else checkpointables
            target[f"optimizer_{name}"] = extra.optimizer
            if extra.scheduler is not None:
                target[f"scheduler_{name}"] = extra.scheduler
            if extra.module is not None:
                target[name] = extra.module
        self.checkpointer = self.build_checkpointer(cfg, model, checkpointables, per_rank_state)

        self.start_epoch = 0
        self.max_epoch = cfg.SOLVER.MAX_EPOCH
        self.max_iter = self.max_epoch * self.iters_per_epoch
        self.register_hooks(self.build_hooks())
        write_run_config(cfg)

    # -- seams of __init__ that projects override -------------------------------------------
    def build_step_trainer(
        self,
        cfg: CfgNode,
        model: nn.Module,
        data_loader: Any,
        optimizer: torch.optim.Optimizer,
    ) -> SimpleTrainer:
        """The object that runs one iteration (``run_step``): :class:`SimpleTrainer`, or
        :class:`AMPTrainer` with ``SOLVER.AMP`` (the same step under autocast), captured in a
        CUDA graph with ``SOLVER.CUDA_GRAPH``. It also steps :attr:`extra_optimizers`.
        Override to return a subclass with its own ``run_step``."""
        device_type = torch.device(cfg.MODEL.DEVICE).type
        amp_dtype = autocast_dtype(cfg, device_type)
        common: Dict[str, Any] = dict(
            grad_clipper=build_gradient_clipper(cfg),
            log_period=cfg.SOLVER.LOG_PERIOD,
            data_seed=(cfg.SEED if cfg.SEED >= 0 else 0) * 1000 + comm.get_rank(),
            extra_optimizers=[e.optimizer for e in self.extra_optimizers.values()],
            cuda_graph=bool(cfg.SOLVER.CUDA_GRAPH),
        )
        if amp_dtype is None:
            return SimpleTrainer(model, data_loader, optimizer, **common)
        return AMPTrainer(
            model, data_loader, optimizer, device_type=device_type, dtype=amp_dtype, **common
        )

    @classmethod
    def build_extra_optimizers(
        cls, cfg: CfgNode, model: nn.Module, iters_per_epoch: int
    ) -> Dict[str, ExtraOptimizer]:
        """Optimizers besides :meth:`build_optimizer`'s, by name (default: none). ``model`` is
        not yet wrapped in DDP. See :class:`ExtraOptimizer`."""
        return {}

    @classmethod
    def build_checkpointer(
        cls,
        cfg: CfgNode,
        model: nn.Module,
        checkpointables: Dict[str, Any],
        per_rank_state: Dict[str, Any],
    ) -> Checkpointer:
        """The :class:`Checkpointer` of OUTPUT_DIR. ``checkpointables`` (optimizer, scheduler,
        grad scaler, extra optimizers) go in the main file written by the main process;
        ``per_rank_state`` in every process's ``<checkpoint>_rank{r}.pth``. Override to add
        entries (``checkpointer.add_checkpointable(name, obj, per_rank=...)``)."""
        return Checkpointer(
            model,
            cfg.OUTPUT_DIR,
            key_mapper=map_fastreid_state_dict,
            save_to_disk=comm.is_main_process(),
            per_rank_state=per_rank_state,
            **checkpointables,
        )

    # -- the wrapped step trainer ----------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        return self._trainer.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._trainer.optimizer

    @property
    def data_loader(self) -> Any:
        return self._trainer.data_loader

    def _sync_inner(self) -> None:
        inner = self._trainer
        inner.iter, inner.epoch, inner.storage = self.iter, self.epoch, self.storage
        inner.start_iter, inner.iters_per_epoch, inner.max_iter = (
            self.start_iter,
            self.iters_per_epoch,
            self.max_iter,
        )

    def begin_epoch_data(self, epoch: int) -> None:
        self._sync_inner()
        self._trainer.begin_epoch_data(epoch)

    def end_epoch_data(self) -> None:
        self._sync_inner()
        self._trainer.end_epoch_data()
        average_buffers(self.model)

    def flush_metrics(self) -> None:
        self._sync_inner()
        self._trainer.flush_metrics()

    def run_step(self) -> None:
        self._sync_inner()
        self._trainer.run_step()

    # -- resume / train ---------------------------------------------------------------------
    def resume_or_load(self, resume: bool = True) -> None:
        """With ``resume`` and a checkpoint in OUTPUT_DIR: restore the model, optimizer,
        scheduler and :meth:`load_state_dict` (epoch, RNG states, data seeds, hooks' states)
        from ``last_checkpoint`` and continue after its epoch. Otherwise load MODEL.WEIGHTS
        (model weights only) if set."""
        resuming = resume and self.checkpointer.has_checkpoint()
        checkpoint = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if not resuming:
            return
        self.load_state_dict(checkpoint)
        logger.info(
            f"Resuming at epoch {self.start_epoch} (iteration {self.start_epoch * self.iters_per_epoch})"
        )

    def state_dict(self) -> Dict[str, Any]:
        """The non-model entries of each checkpoint: ``epoch``, ``iteration``, every hook's
        state, the step's (``data_seed``, ``sampler_seed``, ``grad_scaler``), ``rng_states``
        of every process (gathered: all processes call it) and the ``config``."""
        state = super().state_dict()
        step = self._trainer.state_dict()
        for key in ("epoch", "iteration"):
            step.pop(key, None)
        merge_state(state, step, type(self._trainer).__name__)
        rng = get_rng_state()
        state["rng_states"] = comm.all_gather(rng) if comm.get_world_size() > 1 else [rng]
        state["config"] = self.cfg.dump()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (checkpoints of earlier releases, with the
        same flat keys, load too); the epoch after the saved one is :attr:`start_epoch`."""
        super().load_state_dict(state)
        self._trainer.load_state_dict(state)
        rng_states = state.get("rng_states")
        if rng_states:
            if len(rng_states) == comm.get_world_size():
                set_rng_state(rng_states[comm.get_rank()])
            else:
                logger.warning(
                    f"The checkpoint was written by {len(rng_states)} processes, this run has "
                    f"{comm.get_world_size()}; random streams are not restored."
                )

    def train(self) -> Dict[str, Any]:
        """Train from ``start_epoch`` to ``SOLVER.MAX_EPOCH``; returns the last evaluation
        results (on the main process).

        The test sets are checked first (:meth:`check_test_sets`), so a typo or an empty
        gallery stops the run before any training, not at the first evaluation."""
        self.check_test_sets(self.cfg)
        try:
            super().train(self.start_epoch, self.max_epoch, self.iters_per_epoch)
        except NonFiniteLossError as e:
            last = self.checkpointer.get_checkpoint_file() if self.checkpointer.save_dir else ""
            if last and os.path.isfile(last):
                where = (
                    f"The last good checkpoint is '{last}'; after the change, rerun with "
                    "--resume to continue from it."
                )
            else:
                where = "No checkpoint was written before it; start the run again."
            raise NonFiniteLossError(f"{e} {where}") from e
        evals = [h for h in self._hooks if isinstance(h, hooks.EvalHook)]
        results = evals[-1].latest_results if evals else {}
        return dict(results) if comm.is_main_process() else {}

    # -- hooks and writers -----------------------------------------------------------------
    def build_hooks(self) -> List[Optional[hooks.HookBase]]:
        """Default hooks, in order: IterationTimer, LRScheduler (one more per extra optimizer
        with a scheduler), LayerFreeze, PreciseBN, PeriodicCheckpointer (before the
        evaluation, so a failing evaluation loses nothing), EvalHook, BestCheckpointer
        (model_best from this epoch's metric), PeriodicWriter, ProgressBar."""
        cfg = self.cfg
        result: List[Optional[hooks.HookBase]] = [
            hooks.IterationTimer(),
            hooks.LRScheduler(self.optimizer, self.scheduler),
        ]
        for name, extra in self.extra_optimizers.items():
            if extra.scheduler is not None:
                result.append(
                    hooks.LRScheduler(extra.optimizer, extra.scheduler, name=f"lr_{name}")
                )
        if cfg.MODEL.FREEZE_LAYERS and cfg.SOLVER.FREEZE_ITERS > 0:
            result.append(
                hooks.LayerFreeze(
                    self.model, self.optimizer, cfg.MODEL.FREEZE_LAYERS, cfg.SOLVER.FREEZE_ITERS
                )
            )
        if cfg.TEST.PRECISE_BN.ENABLED and get_bn_modules(self.model):

            def precise_bn_loader() -> Any:
                bn_cfg = cfg.clone()
                bn_cfg.defrost()
                bn_cfg.DATASETS.NAMES = (cfg.TEST.PRECISE_BN.DATASET,)
                return self.build_train_loader(bn_cfg)

            result.append(
                hooks.PreciseBN(
                    unwrap_model(self.model),
                    precise_bn_loader,
                    cfg.TEST.PRECISE_BN.NUM_ITER,
                    cfg.TEST.EVAL_PERIOD,
                )
            )
        tests = list(cfg.DATASETS.TESTS)
        metric_name = "metric" if len(tests) <= 1 else f"{tests[0]}/metric"
        # The epoch's checkpoint is written before evaluating: a failing evaluation never
        # costs the training; model_best follows the evaluation.
        result.append(hooks.PeriodicCheckpointer(self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD))
        result.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, lambda: self.test(self.cfg, self.model)))
        result.append(hooks.BestCheckpointer(self.checkpointer, metric_name=metric_name))
        # Every process runs the writer hook: flushing the losses averages them across ranks.
        writers = self.build_writers() if comm.is_main_process() else []
        result.append(hooks.PeriodicWriter(writers, period=cfg.SOLVER.LOG_PERIOD))
        result.append(hooks.ProgressBar())
        return result

    def build_writers(self) -> List[EventWriter]:
        """Console line, ``OUTPUT_DIR/metrics.json`` and tensorboard events in OUTPUT_DIR."""
        output_dir = self.cfg.OUTPUT_DIR
        writers: List[EventWriter] = [CommonMetricPrinter(self.max_iter, self.iters_per_epoch)]
        if output_dir:
            writers.append(JSONWriter(os.path.join(output_dir, "metrics.json")))
            writers.append(TensorboardXWriter(output_dir))
        return writers

    # -- builders projects override --------------------------------------------------------
    @classmethod
    def add_config(cls, cfg: CfgNode) -> None:
        """Add the project's own config keys to ``cfg`` (in place), before the config file
        and the command-line overrides are merged. The core trainer adds none."""

    @classmethod
    def evaluate_weights(cls, cfg: CfgNode) -> OrderedDict[str, Any]:
        """``--eval-only``: build the model for inference with ``MODEL.WEIGHTS`` loaded
        (read once; random weights without it) and :meth:`test` it with the config the
        model was built from. Nothing in OUTPUT_DIR that training wrote is rewritten."""
        from fastreid.predictor import build_inference_model

        model, model_cfg = build_inference_model(cfg, build_fn=cls.build_model)
        return cls.test(model_cfg, model)

    @classmethod
    def auto_scale_hyperparams(cls, cfg: CfgNode, num_classes: int) -> CfgNode:
        """Fill ``MODEL.HEADS.NUM_CLASSES`` from the training data when it is 0."""
        with cfg.unfrozen():
            if cfg.MODEL.HEADS.NUM_CLASSES == 0:
                cfg.MODEL.HEADS.NUM_CLASSES = int(num_classes)
                logging.getLogger("fastreid").info(
                    f"Auto-scaling MODEL.HEADS.NUM_CLASSES={num_classes}"
                )
            elif cfg.MODEL.HEADS.NUM_CLASSES != num_classes:
                logging.getLogger("fastreid").warning(
                    f"MODEL.HEADS.NUM_CLASSES={cfg.MODEL.HEADS.NUM_CLASSES} but the training data has "
                    f"{num_classes} identities; set it to 0 to fill it in automatically."
                )
        return cfg

    @classmethod
    def build_model(cls, cfg: CfgNode) -> nn.Module:
        """``fastreid.modeling.build_model(cfg)``, logged."""
        from fastreid.modeling import build_model
        from fastreid.modeling.meta_arch.build import compile_backbone

        model = build_model(cfg)
        logging.getLogger("fastreid").info(f"Model:\n{model}")
        if cfg.MODEL.COMPILE:
            compile_backbone(model)
        return model

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
        """``fastreid.solver.build_optimizer(cfg, model)``."""
        from fastreid.solver import build_optimizer

        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(
        cls, cfg: CfgNode, optimizer: torch.optim.Optimizer, iters_per_epoch: int
    ) -> Any:
        """``fastreid.solver.build_lr_scheduler(cfg, optimizer, iters_per_epoch)``: one
        scheduler stepped every iteration."""
        from fastreid.solver import build_lr_scheduler

        return build_lr_scheduler(cfg, optimizer, iters_per_epoch)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> Any:
        """``fastreid.data.build_reid_train_loader(cfg)``: an infinite loader of batch dicts
        whose ``dataset`` has ``num_classes`` and ``len()``."""
        from fastreid.data import build_reid_train_loader

        logging.getLogger("fastreid").info("Prepare training set")
        return build_reid_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str) -> Tuple[Any, int]:
        """``fastreid.data.build_reid_test_loader(cfg, dataset_name)`` -> (loader, num_query)."""
        from fastreid.data import build_reid_test_loader

        return build_reid_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(
        cls, cfg: CfgNode, dataset_name: str, output_dir: Optional[str] = None
    ) -> Tuple[Any, Any]:
        """The test loader of ``dataset_name`` and its evaluator: ``TEST.EVALUATOR`` (default
        ``ReidEvaluator``) from ``EVALUATOR_REGISTRY``, built by its ``from_test_set``
        classmethod. Returns ``(data_loader, evaluator)`` as FastReID does."""
        from fastreid.evaluation import EVALUATOR_REGISTRY

        data_loader, num_query = cls.build_test_loader(cfg, dataset_name)
        evaluator_cls = EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)
        evaluator = evaluator_cls.from_test_set(
            cfg,
            test_set=getattr(data_loader, "dataset", None),
            num_query=num_query,
            dataset_name=dataset_name,
            output_dir=output_dir,
        )
        return data_loader, evaluator

    @classmethod
    def check_test_sets(cls, cfg: CfgNode) -> None:
        """Build the loader and evaluator of every ``DATASETS.TESTS`` entry once, before
        training: a misspelled name, a missing folder, an empty query or gallery, or a test
        set without any true match is one error now rather than at the first evaluation.
        Evaluators check their own needs in ``check_test_set(test_set, dataset_name)``."""
        check_test_sets(cls, cfg)

    @classmethod
    def test(cls, cfg: CfgNode, model: nn.Module) -> OrderedDict[str, Any]:
        """Evaluate ``model`` on every ``DATASETS.TESTS`` entry, log a table per dataset and
        return the results: ``{metric: value}`` for one test set, else
        ``{dataset: {metric: value}}`` (FastReID's convention). Results are complete on the
        main process; other processes take part in feature extraction."""
        return evaluate_test_sets(cls, cfg, model)

    # Set True in a subclass whose model leaves some parameters without a gradient in a
    # step (DDP then searches the graph for them every iteration, which costs time).
    find_unused_parameters: bool = False

    @classmethod
    def wrap_distributed(cls, cfg: CfgNode, model: nn.Module) -> nn.Module:
        """DistributedDataParallel when several processes run. Frozen layers still receive
        gradients (see LayerFreeze), so ``find_unused_parameters`` stays off unless a
        subclass sets :attr:`find_unused_parameters`."""
        return wrap_ddp(model, torch.device(cfg.MODEL.DEVICE), cls.find_unused_parameters)
