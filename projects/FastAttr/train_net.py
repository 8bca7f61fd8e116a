#!/usr/bin/env python
"""Train or evaluate a FastAttr attribute model.

    python projects/FastAttr/train_net.py --config-file projects/FastAttr/configs/pa100.yml \
        MODEL.BACKBONE.PRETRAIN_PATH /path/to/resnet50.pth
    python projects/FastAttr/train_net.py --config-file X --eval-only MODEL.WEIGHTS model_final.pth

Bad input ends with one ``error:`` line and exit code 2 (``FASTREID_DEBUG=1`` shows the
traceback).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from fastreid.config import CfgNode, get_cfg
from fastreid.engine import default_argument_parser, default_setup, launch
from fastreid.utils.checkpoint import Checkpointer, num_classes_in_checkpoint
from fastreid.utils.errors import exit_on_bad_input
from projects.FastAttr.fastattr import AttrTrainer, add_attr_config
from projects.FastAttr.fastattr.trainer import build_attribute_datasets, set_num_attributes


def setup(args: argparse.Namespace) -> CfgNode:
    cfg = get_cfg()
    add_attr_config(cfg)
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts or [])
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def evaluate(cfg: CfgNode) -> Any:
    """Test MODEL.WEIGHTS on DATASETS.TESTS, the head sized to the first test set."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.BACKBONE.PRETRAIN = False  # the weights come from MODEL.WEIGHTS
    first = cfg.DATASETS.TESTS[0]
    count = len(build_attribute_datasets(cfg, [first])[0].attribute_names)
    if cfg.MODEL.WEIGHTS:
        trained = num_classes_in_checkpoint(cfg.MODEL.WEIGHTS)
        if trained and trained != count:
            raise ValueError(
                f"MODEL.WEIGHTS {cfg.MODEL.WEIGHTS} predicts {trained} attributes but {first} "
                f"has {count}; evaluate it on the kind of dataset it was trained on."
            )
    else:
        logging.getLogger("fastreid").warning(
            "--eval-only without MODEL.WEIGHTS evaluates a randomly initialised model."
        )
    set_num_attributes(cfg, count, first)
    cfg.freeze()
    model = AttrTrainer.build_model(cfg)
    Checkpointer(model, save_dir=cfg.OUTPUT_DIR).load(cfg.MODEL.WEIGHTS)
    return AttrTrainer.test(cfg, model)


def main(args: argparse.Namespace) -> Any:
    cfg = setup(args)
    if args.eval_only:
        return evaluate(cfg)
    trainer = AttrTrainer(cfg)
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
