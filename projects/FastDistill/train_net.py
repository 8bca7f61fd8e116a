#!/usr/bin/env python
"""FastDistill's command line: train a teacher, then a student distilled from it.

    python3 projects/FastDistill/train_net.py --config-file projects/FastDistill/configs/sbs_r101ibn.yml --num-gpus 4
    python3 projects/FastDistill/train_net.py --config-file projects/FastDistill/configs/kd-sbs_r101ibn-sbs_r34.yml \
      --num-gpus 4 MODEL.META_ARCHITECTURE Distiller \
      KD.MODEL_CONFIG projects/FastDistill/logs/dukemtmc/r101_ibn/config.yaml \
      KD.MODEL_WEIGHTS projects/FastDistill/logs/dukemtmc/r101_ibn/model_best.pth
    python3 projects/FastDistill/train_net.py --config-file X --eval-only MODEL.WEIGHTS student.pth

The distillation meta-architectures are core ones (``Distiller``, ``DistillerOverhaul``); this
script only imports the project package so that ``build_resnet_backbone_distill`` is
registered, and otherwise is the core trainer (same options as ``tools/train_net.py``).
"""

if not __package__:  # run as a script: import this project from the folder that holds it
    import os
    import sys

    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))
    __package__ = f"{os.path.basename(os.path.dirname(_HERE))}.{os.path.basename(_HERE)}"

from fastreid.engine import default_argument_parser
from fastreid.engine.cli import run

from . import fastdistill  # noqa: F401 - registers build_resnet_backbone_distill

if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    run(args)
