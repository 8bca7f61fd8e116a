"""The standard training set-up: command line, output folder, logging, and
:class:`DefaultTrainer`, which builds everything from a config and that projects subclass.

Typical use (this is what ``tools/train_net.py`` does)::

    args = default_argument_parser().parse_args()
    cfg = get_cfg(); cfg.merge_from_file(args.config_file); cfg.merge_from_list(args.opts)
    default_setup(cfg, args)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fastreid.config import CfgNode, ConfigArgumentParser
from fastreid.modeling.compat import map_fastreid_state_dict
from fastreid.solver import build_gradient_clipper
from fastreid.utils import comm
from fastreid.utils.checkpoint import (
    Checkpointer,
    CheckpointError,
    load_checkpoint_file,
    unwrap_model,
)
from fastreid.utils.env import (
    collect_env_info,
    get_rng_state,
    resolve_device,
    seed_all_rng,
    set_rng_state,
)
from fastreid.utils.events import CommonMetricPrinter, EventWriter, JSONWriter, TensorboardXWriter
from fastreid.utils.file_io import atomic_write_text, ensure_dir
from fastreid.utils.logger import setup_logger
from fastreid.utils.precision_bn import get_bn_modules

from . import hooks
from .output_dir import (
    OutputDirInUseError,
    acquire_output_dir,
    check_previous_run,
    release_output_dir,
)
from .train_loop import AMPTrainer, NonFiniteLossError, SimpleTrainer, TrainerBase

__all__ = [
    "default_argument_parser",
    "default_setup",
    "resolve_device",
    "DefaultTrainer",
    "ExtraOptimizer",
    "average_buffers",
    "averaged_buffers",
]

logger = logging.getLogger(__name__)


def default_argument_parser(epilog: Optional[str] = None) -> argparse.ArgumentParser:
    """FastReID's command line::

        --config-file X [--num-gpus N] [--num-machines M --machine-rank R --dist-url URL]
        [--resume] [--eval-only] [--root DIR] KEY VALUE ...   (or --opts KEY VALUE ...)

    Without a GPU, ``--num-gpus N`` starts N CPU processes (gloo).
    """
    parser = ConfigArgumentParser(
        trailing_flags={"--resume": "resume", "--eval-only": "eval_only"},
        epilog=epilog
        or (
            "Examples:\n"
            "  Train on one machine:\n"
            "    $ train_net.py --config-file configs/Market1501/bagtricks_R50.yml --num-gpus 4\n"
            "  Change config options:\n"
            "    $ train_net.py --config-file cfg.yml SOLVER.BASE_LR 0.001 OUTPUT_DIR logs/x\n"
            "  Evaluate a trained model:\n"
            "    $ train_net.py --config-file cfg.yml --eval-only MODEL.WEIGHTS logs/x/model_final.pth\n"
            "  Two machines (run on each, with its --machine-rank):\n"
            "    $ train_net.py --config-file cfg.yml --num-gpus 8 --num-machines 2 --machine-rank 0 "
            "--dist-url tcp://10.0.0.1:29500\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to the config file")
    parser.add_argument(
        "--resume", action="store_true", help="resume from OUTPUT_DIR/last_checkpoint"
    )
    parser.add_argument(
        "--eval-only", action="store_true", help="evaluate MODEL.WEIGHTS, no training"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="train anew into an OUTPUT_DIR that holds an earlier run's checkpoints "
        "(they are replaced); without it such a run is refused unless --resume is given",
    )
    parser.add_argument(
        "--root",
        default="",
        metavar="DIR",
        help="the folder that holds the datasets (DATASETS.ROOT; default $FASTREID_DATASETS, "
        "else ./datasets)",
    )
    parser.add_argument(
        "--num-gpus",
        type=int,
        default=1,
        help="processes per machine (GPUs, or CPU processes without a GPU)",
    )
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument(
        "--machine-rank", type=int, default=0, help="rank of this machine (unique per machine)"
    )
    parser.add_argument(
        "--dist-url",
        default="auto",
        help="initialisation URL for torch.distributed, e.g. tcp://HOST:PORT; 'auto' picks a free "
        "local port (single machine only)",
    )
    return parser


def _use_available_device(cfg: CfgNode) -> CfgNode:
    """Set ``MODEL.DEVICE`` to what :func:`resolve_device` gives (cuda -> cpu without a GPU)."""
    device = str(resolve_device(cfg.MODEL.DEVICE))
    if device != cfg.MODEL.DEVICE:
        frozen = cfg.is_frozen()
        cfg.defrost()
        cfg.MODEL.DEVICE = device
        if frozen:
            cfg.freeze()
    return cfg


def default_setup(cfg: CfgNode, args: Optional[argparse.Namespace] = None) -> CfgNode:
    """What every run does first: create ``OUTPUT_DIR`` and take its lock (a folder a live run
    uses is refused; training anew over an earlier run's checkpoints needs ``--resume`` or
    ``--overwrite``, see :mod:`fastreid.engine.output_dir`), log to the console and
    ``OUTPUT_DIR/log.txt``, log the environment, arguments and config, fall back to the CPU
    when no GPU exists, seed every RNG (``SEED``, plus the rank) and write the config to
    ``OUTPUT_DIR/config.yaml``. Returns ``cfg`` (updated in place for device and seed)."""
    output_dir = cfg.OUTPUT_DIR
    rank = comm.get_rank()
    if comm.is_main_process() and output_dir:
        ensure_dir(output_dir, what="OUTPUT_DIR")
        acquire_output_dir(output_dir)
        if args is not None and not getattr(args, "eval_only", False):
            try:
                check_previous_run(
                    output_dir,
                    resume=bool(getattr(args, "resume", False)),
                    overwrite=bool(getattr(args, "overwrite", False)),
                )
            except OutputDirInUseError:
                release_output_dir(output_dir)
                raise
    comm.synchronize()
    setup_logger(output_dir or None, distributed_rank=rank)
    log = logging.getLogger("fastreid")
    log.info(f"Rank of current process: {rank}. World size: {comm.get_world_size()}")
    log.info("Environment info:\n" + collect_env_info())
    if args is not None:
        log.info("Command line arguments: " + str(args))
        config_file = getattr(args, "config_file", "")
        if config_file and os.path.isfile(config_file):
            with open(config_file, encoding="utf-8") as f:
                log.info(f"Contents of args.config_file={config_file}:\n{f.read()}")
    _use_available_device(cfg)

    frozen = cfg.is_frozen()
    cfg.defrost()
    seed = seed_all_rng(None if cfg.SEED < 0 else cfg.SEED + rank)
    if cfg.SEED < 0:
        # Record the seed actually used so the run can be repeated from config.yaml.
        cfg.SEED = comm.all_gather(seed)[0]
    if frozen:
        cfg.freeze()
    log.info(f"Using random seed {seed}")
    log.info(f"Running with full config:\n{cfg.dump()}")

    if comm.is_main_process() and output_dir:
        path = os.path.join(output_dir, "config.yaml")
        atomic_write_text(path, cfg.dump())
        log.info(f"Full config saved to {os.path.abspath(path)}")

    if not (args is not None and getattr(args, "eval_only", False)):
        torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK)
    return cfg


def _autocast_setting(cfg: CfgNode, device_type: str) -> Optional[torch.dtype]:
    """The autocast dtype SOLVER.AMP asks for on ``device_type`` (``None``: full precision)."""
    amp = cfg.SOLVER.AMP
    if not amp.ENABLED:
        return None
    if device_type == "cuda":
        names = {
            "float16": torch.float16,
            "fp16": torch.float16,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
        }
        if str(amp.DTYPE).lower() not in names:
            raise ValueError(
                f"SOLVER.AMP.DTYPE must be 'float16' or 'bfloat16', got '{amp.DTYPE}'."
            )
        return names[str(amp.DTYPE).lower()]
    if device_type == "cpu":
        if not amp.CPU:
            logger.info(
                "SOLVER.AMP.ENABLED applies to CUDA; training on the CPU in float32 (set SOLVER.AMP.CPU True for bf16 autocast)."
            )
            return None
        return torch.bfloat16
    return None


PER_RANK_ATTR = "per_rank_state"


def averaged_buffers(model: nn.Module) -> List[torch.Tensor]:
    """The floating-point buffers :func:`average_buffers` averages: all of them except those
    of sub-modules that set ``per_rank_state = True`` (state meant to differ per process, e.g.
    a classifier shard), and the buffers they name in ``per_rank_buffers`` (a set of names)."""
    skip_prefixes: List[str] = []
    skip_names = set()
    for name, module in unwrap_model(model).named_modules():
        prefix = f"{name}." if name else ""
        if getattr(module, PER_RANK_ATTR, False):
            skip_prefixes.append(prefix)
        for buffer_name in getattr(module, "per_rank_buffers", ()):
            skip_names.add(prefix + buffer_name)
    return [
        b
        for name, b in unwrap_model(model).named_buffers()
        if b.is_floating_point()
        and name not in skip_names
        and not any(name.startswith(p) for p in skip_prefixes)
    ]


@torch.no_grad()
def average_buffers(model: nn.Module) -> None:
    """Average the floating-point buffers (BN running statistics) over all processes.

    DDP runs with ``broadcast_buffers=False`` (as FastReID), so each process's BN statistics
    follow its own batches. Averaging them at the end of each epoch makes every process
    evaluate, and every checkpoint hold, the same model. A no-op in a single process.
    Buffers meant to differ per process opt out (see :func:`averaged_buffers`).
    """
    if comm.get_world_size() == 1:
        return
    buffers = averaged_buffers(model)
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1).float() for b in buffers])
    torch.distributed.all_reduce(flat)
    flat /= comm.get_world_size()
    offset = 0
    for b in buffers:
        n = b.numel()
        b.copy_(flat[offset : offset + n].view_as(b))
        offset += n


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


class DefaultTrainer(TrainerBase):
    """A trainer with the standard behaviour, built from a config:

    1. builds the train loader, fills ``MODEL.HEADS.NUM_CLASSES`` from it
       (:meth:`auto_scale_hyperparams`), then the model, optimizer and LR scheduler;
    2. wraps the model in DDP when several processes run;
    3. trains with :class:`SimpleTrainer` or, with ``SOLVER.AMP``, :class:`AMPTrainer`;
    4. registers the default hooks (:meth:`build_hooks`) and writers (:meth:`build_writers`);
    5. writes the final config to ``OUTPUT_DIR/config.yaml``.

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
        _use_available_device(cfg)

        data_loader = self.build_train_loader(cfg)
        cfg = self.auto_scale_hyperparams(cfg, data_loader.dataset.num_classes)
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
        if getattr(self._trainer, "grad_scaler", None) is not None:
            checkpointables["grad_scaler"] = self._trainer.grad_scaler
        per_rank_state: Dict[str, Any] = {}
        for name, extra in self.extra_optimizers.items():
            target = per_rank_state if extra.per_rank else checkpointables
            target[f"optimizer_{name}"] = extra.optimizer
            if extra.scheduler is not None:
                target[f"scheduler_{name}"] = extra.scheduler
        self.checkpointer = self.build_checkpointer(cfg, model, checkpointables, per_rank_state)

        self.start_epoch = 0
        self.max_epoch = cfg.SOLVER.MAX_EPOCH
        self.max_iter = self.max_epoch * self.iters_per_epoch
        cfg.freeze()
        self.cfg = cfg

        self._eval_hook: Optional[hooks.EvalHook] = None
        self._checkpoint_hook: Optional[hooks.PeriodicCheckpointer] = None
        self._best_hook: Optional[hooks.BestCheckpointer] = None
        self.register_hooks(self.build_hooks())

        if comm.is_main_process() and cfg.OUTPUT_DIR:
            atomic_write_text(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), cfg.dump())

    # -- seams of __init__ that projects override -------------------------------------------
    def build_step_trainer(
        self,
        cfg: CfgNode,
        model: nn.Module,
        data_loader: Any,
        optimizer: torch.optim.Optimizer,
    ) -> SimpleTrainer:
        """The object that runs one iteration (``run_step``): :class:`SimpleTrainer`, or
        :class:`AMPTrainer` with ``SOLVER.AMP``. It also steps :attr:`extra_optimizers`.
        Override to return a subclass with its own ``run_step``."""
        device_type = torch.device(cfg.MODEL.DEVICE).type
        autocast_dtype = _autocast_setting(cfg, device_type)
        common: Dict[str, Any] = dict(
            grad_clipper=build_gradient_clipper(cfg),
            log_period=cfg.SOLVER.LOG_PERIOD,
            data_seed=(cfg.SEED if cfg.SEED >= 0 else 0) * 1000 + comm.get_rank(),
            extra_optimizers=[e.optimizer for e in self.extra_optimizers.values()],
        )
        if autocast_dtype is None:
            return SimpleTrainer(model, data_loader, optimizer, **common)
        return AMPTrainer(
            model, data_loader, optimizer, device_type=device_type, dtype=autocast_dtype, **common
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
        """With ``resume`` and a checkpoint in OUTPUT_DIR: restore model, optimizer, scheduler,
        epoch, RNG states and best metric from ``last_checkpoint`` and continue after its epoch.
        Otherwise load MODEL.WEIGHTS (model weights only) if set."""
        resuming = resume and self.checkpointer.has_checkpoint()
        checkpoint = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if not resuming:
            return
        self.start_epoch = int(checkpoint.get("epoch", -1)) + 1
        rng_states = checkpoint.get("rng_states")
        if rng_states:
            if len(rng_states) == comm.get_world_size():
                set_rng_state(rng_states[comm.get_rank()])
            else:
                logger.warning(
                    f"The checkpoint was written by {len(rng_states)} processes, this run has "
                    f"{comm.get_world_size()}; random streams are not restored."
                )
        if "data_seed" in checkpoint:
            self._trainer.data_stream.seed = int(checkpoint["data_seed"])
        if checkpoint.get("sampler_seed") is not None:
            self._trainer.data_stream.sampler_seed = int(checkpoint["sampler_seed"])
        if self._best_hook is not None:
            self._best_hook.best_metric = self._best_metric_on_disk(checkpoint.get("best_metric"))
        logger.info(
            f"Resuming at epoch {self.start_epoch} (iteration {self.start_epoch * self.iters_per_epoch})"
        )

    def _best_metric_on_disk(self, stored: Optional[float]) -> Optional[float]:
        """The best metric so far: the resumed checkpoint's, or model_best's when higher
        (model_best is written after the epoch's checkpoint, by the evaluation)."""
        path = os.path.join(self.cfg.OUTPUT_DIR, "model_best.pth")
        if not (self.cfg.OUTPUT_DIR and os.path.isfile(path)):
            return stored
        try:
            best = load_checkpoint_file(path).get("best_metric")
        except CheckpointError:
            return stored
        if best is None or (stored is not None and stored >= best):
            return stored
        return float(best)

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
        results = self._eval_hook.latest_results if self._eval_hook is not None else {}
        return dict(results) if comm.is_main_process() else {}

    def checkpoint_state(self) -> Dict[str, Any]:
        """The non-model entries stored in each checkpoint (gathered from every process)."""
        rng = get_rng_state()
        return {
            "epoch": self.epoch,
            "iteration": self.iter,
            "rng_states": comm.all_gather(rng) if comm.get_world_size() > 1 else [rng],
            "data_seed": self._trainer.data_stream.seed,
            "sampler_seed": self._trainer.data_stream.sampler_seed,
            "config": self.cfg.dump(),
        }

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
        self._best_hook = hooks.BestCheckpointer(
            self.checkpointer, metric_name=metric_name, extra_state_fn=self.checkpoint_state
        )
        # The epoch's checkpoint is written before evaluating: a failing evaluation never
        # costs the training; model_best follows the evaluation.
        self._checkpoint_hook = hooks.PeriodicCheckpointer(
            self.checkpointer,
            cfg.SOLVER.CHECKPOINT_PERIOD,
            extra_state_fn=self.checkpoint_state,
            best_metric_fn=lambda: self._best_hook.best_metric,
        )
        result.append(self._checkpoint_hook)
        self._eval_hook = hooks.EvalHook(
            cfg.TEST.EVAL_PERIOD, lambda: self.test(self.cfg, self.model)
        )
        result.append(self._eval_hook)
        result.append(self._best_hook)
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
        (random weights without it) and :meth:`test` it."""
        from fastreid.predictor import build_model_from_cfg

        model = build_model_from_cfg(cfg, build_fn=cls.build_model)
        return cls.test(model.cfg, model)

    @classmethod
    def auto_scale_hyperparams(cls, cfg: CfgNode, num_classes: int) -> CfgNode:
        """Fill ``MODEL.HEADS.NUM_CLASSES`` from the training data when it is 0."""
        frozen = cfg.is_frozen()
        cfg.defrost()
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
        if frozen:
            cfg.freeze()
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
        for dataset_name in cfg.DATASETS.TESTS:
            try:
                built = cls.build_evaluator(cfg, dataset_name, output_dir=None)
            except NotImplementedError:
                continue  # test() warns about it
            if isinstance(built, tuple):
                data_loader, evaluator = built
            else:
                evaluator = built
                data_loader, _ = cls.build_test_loader(cfg, dataset_name)
            check = getattr(evaluator, "check_test_set", None)
            if check is not None:
                check(getattr(data_loader, "dataset", None), dataset_name)

    @classmethod
    def test(cls, cfg: CfgNode, model: nn.Module) -> OrderedDict[str, Any]:
        """Evaluate ``model`` on every ``DATASETS.TESTS`` entry, log a table per dataset and
        return the results: ``{metric: value}`` for one test set, else
        ``{dataset: {metric: value}}`` (FastReID's convention). Results are complete on the
        main process; other processes take part in feature extraction."""
        from fastreid.evaluation import inference_on_dataset, print_csv_format

        log = logging.getLogger("fastreid")
        results: OrderedDict[str, Any] = OrderedDict()
        for dataset_name in cfg.DATASETS.TESTS:
            log.info(f"Prepare testing set {dataset_name}")
            try:
                built = cls.build_evaluator(cfg, dataset_name, output_dir=cfg.OUTPUT_DIR or None)
            except NotImplementedError:
                log.warning(
                    f"No evaluator for {dataset_name}; implement build_evaluator() to test it."
                )
                results[dataset_name] = {}
                continue
            if isinstance(built, tuple):
                data_loader, evaluator = built
            else:  # an override that returns only the evaluator
                evaluator = built
                data_loader, _ = cls.build_test_loader(cfg, dataset_name)
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

    # Set True in a subclass whose model leaves some parameters without a gradient in a
    # step (DDP then searches the graph for them every iteration, which costs time).
    find_unused_parameters: bool = False

    @classmethod
    def wrap_distributed(cls, cfg: CfgNode, model: nn.Module) -> nn.Module:
        """DistributedDataParallel when several processes run. Frozen layers still receive
        gradients (see LayerFreeze), so ``find_unused_parameters`` stays off unless a
        subclass sets :attr:`find_unused_parameters`."""
        if comm.get_world_size() == 1:
            return model
        find_unused = cls.find_unused_parameters
        device = torch.device(cfg.MODEL.DEVICE)
        if device.type == "cuda":
            local = comm.get_local_rank()
            return DistributedDataParallel(
                model,
                device_ids=[local],
                output_device=local,
                broadcast_buffers=False,
                find_unused_parameters=find_unused,
            )
        return DistributedDataParallel(
            model, broadcast_buffers=False, find_unused_parameters=find_unused
        )
