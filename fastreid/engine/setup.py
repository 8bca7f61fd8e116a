"""What every run does before it trains: the command line, the output folder and its lock,
logging, the device and the seed.

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
from typing import Optional

import torch

from fastreid.config import CfgNode, ConfigArgumentParser
from fastreid.utils import comm
from fastreid.utils.env import collect_env_info, resolve_device, seed_all_rng
from fastreid.utils.file_io import atomic_write_text, ensure_dir
from fastreid.utils.logger import setup_logger

from .output_dir import (
    OutputDirInUseError,
    acquire_output_dir,
    check_previous_run,
    release_output_dir,
)

__all__ = [
    "default_argument_parser",
    "default_setup",
    "resolve_device",
    "use_available_device",
    "write_run_config",
]

#: The log of an ``--eval-only`` run in OUTPUT_DIR (training's ``log.txt`` is left as it is).
EVAL_LOG_NAME = "log_eval.txt"


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


def use_available_device(cfg: CfgNode) -> CfgNode:
    """Set ``MODEL.DEVICE`` to what :func:`resolve_device` gives (cuda -> cpu without a GPU)."""
    device = str(resolve_device(cfg.MODEL.DEVICE))
    if device != cfg.MODEL.DEVICE:
        with cfg.unfrozen():
            cfg.MODEL.DEVICE = device
    return cfg


def default_setup(cfg: CfgNode, args: Optional[argparse.Namespace] = None) -> CfgNode:
    """What every run does first: create ``OUTPUT_DIR`` and take its lock (a folder a live run
    uses is refused; training anew over an earlier run's checkpoints needs ``--resume`` or
    ``--overwrite``, see :mod:`fastreid.engine.output_dir`), log to the console and
    ``OUTPUT_DIR/log.txt`` (``log_eval.txt`` with ``--eval-only``, which rewrites none of
    training's files), log the environment, arguments and config, fall back to the CPU
    when no GPU exists and seed every RNG (``SEED``, plus the rank).

    Returns ``cfg`` with the two values derived here recorded in place, once: the device
    actually used and, for ``SEED < 0``, the seed drawn. The trainer adds the class count
    and writes ``OUTPUT_DIR/config.yaml`` (:func:`write_run_config`)."""
    output_dir = cfg.OUTPUT_DIR
    eval_only = args is not None and bool(getattr(args, "eval_only", False))
    rank = comm.get_rank()
    if comm.is_main_process() and output_dir:
        ensure_dir(output_dir, what="OUTPUT_DIR")
        acquire_output_dir(output_dir)
        if args is not None and not eval_only:
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
    log_to = os.path.join(output_dir, EVAL_LOG_NAME) if output_dir and eval_only else output_dir
    setup_logger(log_to or None, distributed_rank=rank)
    log = logging.getLogger("fastreid")
    log.info(f"Rank of current process: {rank}. World size: {comm.get_world_size()}")
    log.info("Environment info:\n" + collect_env_info())
    if args is not None:
        log.info("Command line arguments: " + str(args))
        config_file = getattr(args, "config_file", "")
        if config_file and os.path.isfile(config_file):
            with open(config_file, encoding="utf-8") as f:
                log.info(f"Contents of args.config_file={config_file}:\n{f.read()}")
    use_available_device(cfg)

    with cfg.unfrozen():
        seed = seed_all_rng(None if cfg.SEED < 0 else cfg.SEED + rank)
        if cfg.SEED < 0:
            # Record the seed actually used so the run can be repeated from config.yaml.
            cfg.SEED = comm.all_gather(seed)[0]
    log.info(f"Using random seed {seed}")
    log.info(f"Running with full config:\n{cfg.dump()}")
    if not eval_only:
        torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK)
    return cfg


def write_run_config(cfg: CfgNode) -> Optional[str]:
    """Write the run's final config to ``OUTPUT_DIR/config.yaml`` (atomically, on the main
    process) and log where; it is what :func:`fastreid.predictor.load_model` reads back.
    Returns the path (``None`` when nothing is written)."""
    if not (comm.is_main_process() and cfg.OUTPUT_DIR):
        return None
    path = os.path.join(cfg.OUTPUT_DIR, "config.yaml")
    atomic_write_text(path, cfg.dump())
    logging.getLogger("fastreid").info(f"Full config saved to {os.path.abspath(path)}")
    return path
