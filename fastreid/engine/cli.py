"""The training / evaluation command line shared by ``tools/train_net.py`` and the
``fastreid-train`` / ``fastreid-eval`` console scripts."""

from __future__ import annotations

import argparse
from typing import Any, List, Optional

from fastreid.config import CfgNode, get_cfg
from fastreid.utils.errors import exit_on_bad_input

from .defaults import DefaultTrainer, default_argument_parser, default_setup
from .launch import launch
from .output_dir import release_output_dir

__all__ = ["setup", "main", "main_reporting_bad_input", "run", "train_main", "eval_main"]


def setup(args: argparse.Namespace, trainer_cls: type = DefaultTrainer) -> CfgNode:
    """Config from ``--config-file``, ``--root`` and the ``KEY VALUE`` overrides (after
    ``trainer_cls.add_config`` adds a project's keys), then :func:`default_setup`."""
    cfg = get_cfg()
    trainer_cls.add_config(cfg)
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    if getattr(args, "root", ""):
        cfg.DATASETS.ROOT = args.root  # a DATASETS.ROOT override below still wins
    cfg.merge_from_list(args.opts or [])
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args: argparse.Namespace, trainer_cls: type = DefaultTrainer) -> Any:
    """Train (``trainer.train()``) or, with ``--eval-only``, evaluate MODEL.WEIGHTS
    (``trainer_cls.evaluate_weights``)."""
    cfg = setup(args, trainer_cls)
    try:
        if args.eval_only:
            return trainer_cls.evaluate_weights(cfg)

        trainer = trainer_cls(cfg)
        trainer.resume_or_load(resume=args.resume)
        return trainer.train()
    finally:
        release_output_dir(cfg.OUTPUT_DIR or None)


def main_reporting_bad_input(args: argparse.Namespace, trainer_cls: type = DefaultTrainer) -> Any:
    """:func:`main` in each process, with bad input reported as one line (exit code 2)."""
    return exit_on_bad_input(main, args, trainer_cls)


def run(args: argparse.Namespace, trainer_cls: type = DefaultTrainer) -> Any:
    """Run :func:`main` in the processes ``--num-gpus`` / ``--num-machines`` ask for.

    Bad input (a wrong config key, a missing file, ...) ends with one ``error:`` line naming
    the fix and exit code 2; ``FASTREID_DEBUG=1`` shows the full traceback. Projects pass
    their ``DefaultTrainer`` subclass as ``trainer_cls``.
    """
    return exit_on_bad_input(
        launch,
        main_reporting_bad_input,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args, trainer_cls),
    )


def _run(argv: Optional[List[str]], eval_only: bool) -> None:
    args = default_argument_parser().parse_args(argv)
    if eval_only:
        args.eval_only = True
    if not args.config_file:
        raise SystemExit(
            "--config-file is required, e.g. --config-file configs/Market1501/bagtricks_R50.yml"
        )
    run(args)


def train_main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``fastreid-train`` (same options as ``tools/train_net.py``)."""
    _run(argv, eval_only=False)


def eval_main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``fastreid-eval``: ``tools/train_net.py --eval-only``."""
    _run(argv, eval_only=True)
