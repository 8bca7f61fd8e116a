"""One trial of a search: a :class:`DefaultTrainer` that reports R1, mAP and score to Ray Tune
after every evaluation, together with a checkpoint of the full trainer state.

The checkpoint holds the model, optimizer, LR scheduler, epoch, iteration, RNG states and the
data-order seed, so a restored trial (after a crash, ``--resume``, or a PBT exploit) goes on
where it stopped instead of restarting its LR schedule. The trial's own config decides the
hyper-parameters (a PBT explore step changes them); the checkpoint decides the progress.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Sequence

from fastreid.config import CfgNode
from fastreid.engine import DefaultTrainer, default_setup, hooks
from fastreid.engine.output_dir import release_output_dir
from fastreid.utils import comm
from fastreid.utils.checkpoint import load_checkpoint_file, unwrap_model

from .space import Param, apply_params

__all__ = [
    "TuneReportHook",
    "TuneTrainer",
    "num_reports",
    "restore_trainer_state",
    "run_trial",
    "trial_metrics",
]

logger = logging.getLogger("fastreid.fasttune")

CHECKPOINT_NAME = "checkpoint"

# report(metrics, checkpoint_dir or None): hands one result to the search.
ReportFn = Callable[[Dict[str, float], Optional[str]], None]


def num_reports(max_epoch: int, eval_period: int) -> int:
    """How many evaluations (= reports) a trial of ``max_epoch`` epochs makes: one every
    ``eval_period`` epochs plus one after the last epoch."""
    return sum(
        1
        for epoch in range(max_epoch)
        if (eval_period > 0 and (epoch + 1) % eval_period == 0) or epoch + 1 == max_epoch
    )


def trial_metrics(results: Mapping, test_set: str = "") -> Dict[str, float]:
    """``r1``, ``map`` and ``score = (r1 + map) / 2`` from an evaluation's results (percent).

    With several test sets the results are nested per dataset; the first one (``test_set``)
    is the one searched on.
    """
    if results and all(isinstance(v, Mapping) for v in results.values()):
        name = test_set if test_set in results else next(iter(results))
        results = results[name]
    missing = [k for k in ("Rank-1", "mAP") if k not in results]
    if missing:
        raise KeyError(
            f"The evaluation results have no {missing} (got {sorted(results)}); a search needs "
            "a re-ID evaluator that reports Rank-1 and mAP."
        )
    r1, mean_ap = float(results["Rank-1"]), float(results["mAP"])
    return {"r1": r1, "map": mean_ap, "score": (r1 + mean_ap) / 2.0}


class TuneReportHook(hooks.EvalHook):
    """Evaluates like :class:`EvalHook`, then saves the trainer state to a fresh folder and
    hands ``{r1, map, score, epoch}`` and that folder to ``report``."""

    def __init__(self, eval_period: int, eval_function: Callable[[], Mapping], report: ReportFn):
        super().__init__(eval_period, eval_function)
        self._report = report
        # Writers run before the report: Ray may end the trial's process right after it (the
        # last epoch, a scheduler's stop, a kill), and the evaluation must be in its logs.
        self.before_report: List[Callable[[], None]] = []

    def _do_eval(self) -> None:
        super()._do_eval()
        trainer = self.trainer
        tests = list(trainer.cfg.DATASETS.TESTS)
        # state_dict gathers the RNG states of every process: all of them call it.
        state = trainer.state_dict()
        checkpoint_dir = None
        metrics: Dict[str, float] = {}
        if comm.is_main_process():
            metrics = trial_metrics(self.latest_results, tests[0] if tests else "")
            metrics["epoch"] = trainer.epoch + 1
            checkpoint_dir = tempfile.mkdtemp(prefix="fasttune-ckpt-")
            trainer.checkpointer.save(CHECKPOINT_NAME, folder=checkpoint_dir, **state)
        for write in self.before_report:
            write()
        try:
            self._report(metrics, checkpoint_dir)
        finally:
            if checkpoint_dir is not None:
                shutil.rmtree(checkpoint_dir, ignore_errors=True)


# The search keeps each trial's checkpoints itself; a trial writes no model files of its own.
_NOT_IN_TRIALS = (hooks.PeriodicCheckpointer, hooks.BestCheckpointer, hooks.ProgressBar)


class TuneTrainer(DefaultTrainer):
    """The trainer of one trial: the default hooks, with the evaluation hook replaced by
    :class:`TuneReportHook` and without the periodic checkpoints (the search keeps its own)
    and the progress bar."""

    def __init__(self, cfg: CfgNode, report: Optional[ReportFn] = None) -> None:
        self._report = report or _tune_report
        super().__init__(cfg)

    def build_hooks(self) -> List[Optional[hooks.HookBase]]:
        result: List[Optional[hooks.HookBase]] = []
        for hook in super().build_hooks():
            if isinstance(hook, _NOT_IN_TRIALS):
                continue
            if type(hook) is hooks.EvalHook:
                hook = TuneReportHook(
                    self.cfg.TEST.EVAL_PERIOD,
                    lambda: self.test(self.cfg, self.model),
                    self._report,
                )
            result.append(hook)
        writers = [h.write for h in result if isinstance(h, hooks.PeriodicWriter)]
        for hook in result:
            if isinstance(hook, TuneReportHook):
                hook.before_report = writers
        return result


def _tune_report(metrics: Dict[str, float], checkpoint_dir: Optional[str]) -> None:
    from ray import tune

    checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    tune.report(metrics, checkpoint=checkpoint)


def restore_trainer_state(trainer: DefaultTrainer, checkpoint_dir: str) -> None:
    """Continue ``trainer`` from the state saved in ``checkpoint_dir`` by
    :class:`TuneReportHook`: weights, optimizer moments, epoch, RNG and data order.

    The hyper-parameters stay the ones of ``trainer.cfg``: the optimizer keeps its configured
    groups (lr, weight decay, momentum, ...) and receives the saved per-parameter state, and
    the LR schedule is the configured one positioned at the restored iteration. For a plain
    restore this is exactly the saved state; after a PBT explore step it applies the new
    values, even when they regroup the parameters (e.g. another weight decay).
    """
    checkpointer = trainer.checkpointer
    save_dir = checkpointer.save_dir
    checkpointer.save_dir = checkpoint_dir
    held = {k: checkpointer.checkpointables.pop(k) for k in ("optimizer", "scheduler")}
    try:
        if not checkpointer.has_checkpoint():
            raise FileNotFoundError(f"No trial checkpoint in '{checkpoint_dir}'.")
        path = checkpointer.get_checkpoint_file()
        # Model, epoch, RNG states, data order (and an AMP grad scaler).
        trainer.resume_or_load(resume=True)
    finally:
        checkpointer.checkpointables.update(held)
        checkpointer.save_dir = save_dir

    saved = load_checkpoint_file(path)
    if "optimizer" in saved:
        _load_optimizer_state_per_parameter(trainer, saved["optimizer"], saved.get("config"))
    scheduler, optimizer = trainer.scheduler, trainer.optimizer
    done = trainer.start_epoch * trainer.iters_per_epoch
    scheduler.last_epoch = done
    lrs = scheduler.lr_at(done) if hasattr(scheduler, "lr_at") else scheduler.get_lr()
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = list(lrs)  # what get_last_lr() returns until the next step


def _load_optimizer_state_per_parameter(
    trainer: DefaultTrainer, saved_state: Dict[str, Any], saved_config: Optional[str]
) -> None:
    """Give each parameter the optimizer state (moments, step) it had in the saved run.

    An optimizer state dict refers to parameters by position in its own grouping, which
    depends on the config (parameters with equal settings share a group). So the saving
    run's optimizer is rebuilt from its config over this model, loaded, and its state handed
    over parameter by parameter; this optimizer keeps its own groups and settings.
    """
    optimizer = trainer.optimizer
    model = unwrap_model(trainer.model)
    if saved_config:
        donor_cfg = type(trainer.cfg).load_cfg(saved_config)
        donor = trainer.build_optimizer(donor_cfg, model)
    else:  # no config stored: assume this run's grouping
        donor = trainer.build_optimizer(trainer.cfg, model)
    try:
        donor.load_state_dict(saved_state)
    except ValueError as e:
        raise ValueError(
            f"The trial checkpoint's optimizer state does not fit this model ({e}); the searched "
            "keys must not change the model's structure."
        ) from None
    for group in optimizer.param_groups:
        for param in group["params"]:
            if param in donor.state:
                optimizer.state[param] = donor.state[param]


def trial_config(
    base_cfg: CfgNode, params: Sequence[Param], sampled: Mapping[str, Any], output_dir: str
) -> CfgNode:
    """The full config of one trial: the base config, the sampled values, its own folder."""
    cfg = apply_params(base_cfg, params, sampled)
    cfg.OUTPUT_DIR = output_dir
    return cfg


def trial_output_dir(exp_path: str) -> str:
    """The trial's folder inside the search folder.

    Ray's ``get_trial_dir()`` is a staging copy in Ray's session folder, uploaded over the
    search folder's copy; a restored trial (``--resume``, a retry) gets a new, empty staging
    folder, whose upload would replace the first run's ``log.txt`` and ``metrics.json``. The
    trial therefore writes into the search folder itself, where a restore appends to them.
    """
    from ray import tune

    name = os.path.basename(tune.get_context().get_trial_dir().rstrip("/"))
    return os.path.join(exp_path, name) if exp_path else tune.get_context().get_trial_dir()


def run_trial(
    config: Dict[str, Any],
    *,
    base_cfg: CfgNode,
    params: Sequence[Param],
    datasets_root: str = "",
    workers: int = 1,
    exp_path: str = "",
) -> None:
    """Ray Tune's function trainable: build the trial's config and train it, resuming from
    the checkpoint Ray hands over (restore after a failure, or a PBT exploit). With
    ``workers > 1`` the trial trains as a DDP group (:mod:`.distributed`)."""
    from ray import tune

    if datasets_root:
        os.environ["FASTREID_DATASETS"] = datasets_root
    cfg = trial_config(base_cfg, params, config, trial_output_dir(exp_path))
    cfg.freeze()
    checkpoint = tune.get_checkpoint()
    if workers > 1:
        from .distributed import run_distributed_trial

        if checkpoint is None:
            run_distributed_trial(cfg, workers, None, _tune_report, datasets_root)
        else:
            with checkpoint.as_directory() as checkpoint_dir:
                run_distributed_trial(cfg, workers, checkpoint_dir, _tune_report, datasets_root)
        return
    default_setup(cfg)
    try:
        trainer = TuneTrainer(cfg)
        if checkpoint is not None:
            with checkpoint.as_directory() as checkpoint_dir:
                restore_trainer_state(trainer, checkpoint_dir)
        trainer.train()
    finally:
        release_output_dir(cfg.OUTPUT_DIR)
