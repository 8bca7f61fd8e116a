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
from typing import Any

from fastreid.config import CfgNode, get_cfg
from fastreid.engine import default_argument_parser, default_setup, launch
from fastreid.engine.output_dir import release_output_dir
from fastreid.modeling.compat import num_classes_in_checkpoint
from fastreid.predictor import build_model_from_cfg
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
    first = cfg.DATASETS.TESTS[0]
    count = len(build_attribute_datasets(cfg, [first])[0].attribute_names)
    if cfg.MODEL.WEIGHTS:
        trained = num_classes_in_checkpoint(cfg.MODEL.WEIGHTS)
        if trained and trained != count:
            raise ValueError(
                f"MODEL.WEIGHTS {cfg.MODEL.WEIGHTS} predicts {trained} attributes but {first} "
                f"has {count}; evaluate it on the kind of dataset it was trained on."
            )
    set_num_attributes(cfg, count, first)
    model = build_model_from_cfg(cfg, build_fn=AttrTrainer.build_model)
    return AttrTrainer.test(model.cfg, model)


def main(args: argparse.Namespace) -> Any:
    cfg = setup(args)
    try:
        if args.eval_only:
            return evaluate(cfg)
        trainer = AttrTrainer(cfg)
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
