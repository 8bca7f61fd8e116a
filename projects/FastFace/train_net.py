#!/usr/bin/env python
"""Train or evaluate a FastFace model (FastReID's command line).

    python projects/FastFace/train_net.py --config-file projects/FastFace/configs/r50_ir.yml
    python projects/FastFace/train_net.py --config-file X --num-gpus 8
    python projects/FastFace/train_net.py --config-file X --resume
    python projects/FastFace/train_net.py --config-file X --eval-only MODEL.WEIGHTS logs/x/model_final.pth

Bad input ends with one ``error:`` line naming the fix and exit code 2.
"""

if not __package__:  # run as a script: import this project from the folder that holds it
    import os
    import sys

    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))
    __package__ = f"{os.path.basename(os.path.dirname(_HERE))}.{os.path.basename(_HERE)}"

from fastreid.engine import default_argument_parser
from fastreid.engine.cli import run

from .fastface.trainer import FaceTrainer

if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    run(args, trainer_cls=FaceTrainer)
