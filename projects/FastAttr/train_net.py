#!/usr/bin/env python
"""Train or evaluate a FastAttr attribute model.

    python projects/FastAttr/train_net.py --config-file projects/FastAttr/configs/pa100.yml \
        MODEL.BACKBONE.PRETRAIN_PATH /path/to/resnet50.pth
    python projects/FastAttr/train_net.py --config-file X --eval-only MODEL.WEIGHTS model_final.pth

Bad input ends with one ``error:`` line and exit code 2 (``FASTREID_DEBUG=1`` shows the
traceback).
"""

if not __package__:  # run as a script: import this project from the folder that holds it
    import os
    import sys

    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))
    __package__ = f"{os.path.basename(os.path.dirname(_HERE))}.{os.path.basename(_HERE)}"

from fastreid.engine import default_argument_parser
from fastreid.engine.cli import run

from .fastattr import AttrTrainer

if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    run(args, trainer_cls=AttrTrainer)
