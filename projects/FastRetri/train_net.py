#!/usr/bin/env python
"""Train or evaluate an image-retrieval model (FastReID's command line).

    python projects/FastRetri/train_net.py --config-file projects/FastRetri/configs/cub.yml
    python projects/FastRetri/train_net.py \
        --config-file projects/FastRetri/configs/fashion_mnist_zeroshot.yml \
        DATASETS.ROOT /usr/share/datasets
    python projects/FastRetri/train_net.py --config-file X --eval-only \
        MODEL.WEIGHTS logs/x/model_final.pth

Bad input ends with one ``error:`` line and exit code 2.
"""

import argparse
import logging
from typing import Any

from fastreid.config import get_cfg
from fastreid.engine import default_argument_parser, default_setup, launch
from fastreid.utils.checkpoint import Checkpointer, num_classes_in_checkpoint
from fastreid.utils.errors import exit_on_bad_input
from projects.FastRetri.fastretri import RetriTrainer, add_retri_config


def setup(args: argparse.Namespace):
    cfg = get_cfg()
    add_retri_config(cfg)
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts or [])
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args: argparse.Namespace) -> Any:
    cfg = setup(args)
    if args.eval_only:
        cfg.defrost()
        cfg.MODEL.BACKBONE.PRETRAIN = False  # the weights come from MODEL.WEIGHTS
        if cfg.MODEL.HEADS.NUM_CLASSES == 0:
            # The classifier is unused at test time; sized like the checkpoint's (or 1 for a
            # randomly initialised model) it loads without a spurious mismatch.
            found = num_classes_in_checkpoint(cfg.MODEL.WEIGHTS) if cfg.MODEL.WEIGHTS else 0
            cfg.MODEL.HEADS.NUM_CLASSES = found or 1
        cfg.freeze()
        if not cfg.MODEL.WEIGHTS:
            logging.getLogger("fastreid").warning(
                "--eval-only without MODEL.WEIGHTS evaluates a randomly initialised model."
            )
        model = RetriTrainer.build_model(cfg)
        Checkpointer(model, save_dir=cfg.OUTPUT_DIR).load(cfg.MODEL.WEIGHTS)
        return RetriTrainer.test(cfg, model)
    trainer = RetriTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def main_reporting_bad_input(args: argparse.Namespace) -> Any:
    return exit_on_bad_input(main, args)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    exit_on_bad_input(
        launch,
        main_reporting_bad_input,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
