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
from typing import Any

from fastreid.config import get_cfg
from fastreid.engine import default_argument_parser, default_setup, launch
from fastreid.engine.output_dir import release_output_dir
from fastreid.predictor import build_model_from_cfg
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
    """Train, or with ``--eval-only`` evaluate MODEL.WEIGHTS (random weights without it)."""
    cfg = setup(args)
    try:
        if args.eval_only:
            model = build_model_from_cfg(cfg, build_fn=RetriTrainer.build_model)
            return RetriTrainer.test(model.cfg, model)
        trainer = RetriTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        return trainer.train()
    finally:
        release_output_dir(cfg.OUTPUT_DIR or None)


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
