#!/usr/bin/env python
"""Train or evaluate a FastFace model (FastReID's command line).

    python projects/FastFace/train_net.py --config-file projects/FastFace/configs/r50_ir.yml
    python projects/FastFace/train_net.py --config-file X --num-gpus 8
    python projects/FastFace/train_net.py --config-file X --resume
    python projects/FastFace/train_net.py --config-file X --eval-only MODEL.WEIGHTS logs/x/model_final.pth

Bad input ends with one ``error:`` line naming the fix and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from fastreid.config import CfgNode, get_cfg
from fastreid.engine import default_argument_parser, default_setup
from fastreid.engine.launch import launch
from fastreid.utils.checkpoint import Checkpointer
from fastreid.utils.errors import exit_on_bad_input
from projects.FastFace.fastface import add_face_config
from projects.FastFace.fastface.trainer import FaceTrainer


def setup(args: argparse.Namespace) -> CfgNode:
    cfg = add_face_config(get_cfg())
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
        cfg.MODEL.BACKBONE.PRETRAIN = False
        # Evaluation needs only the embedding: no classifier, whatever the checkpoint holds.
        cfg.MODEL.HEADS.PFC.ENABLED = True
        cfg.freeze()
        if not cfg.MODEL.WEIGHTS:
            logging.getLogger("fastreid").warning(
                "--eval-only without MODEL.WEIGHTS evaluates a randomly initialised model."
            )
        model = FaceTrainer.build_model(cfg)
        Checkpointer(model, save_dir=cfg.OUTPUT_DIR).load(cfg.MODEL.WEIGHTS)
        return FaceTrainer.test(cfg, model)
    trainer = FaceTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def _main_reporting_bad_input(args: argparse.Namespace) -> Any:
    return exit_on_bad_input(main, args)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    exit_on_bad_input(
        launch,
        _main_reporting_bad_input,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
