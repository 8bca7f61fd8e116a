#!/usr/bin/env python
"""Train or evaluate an image classifier (FastReID's command line).

    python projects/FastCls/train_net.py --config-file projects/FastCls/configs/base-clas.yaml
    python projects/FastCls/train_net.py \
        --config-file projects/FastCls/configs/fashion_mnist_small_resnet.yml \
        DATASETS.ROOT /usr/share/datasets
    python projects/FastCls/train_net.py --config-file X --eval-only \
        MODEL.WEIGHTS logs/x/model_final.pth

Training writes idx2class.json next to its checkpoints; --eval-only reads it from the folder of
MODEL.WEIGHTS. Bad input ends with one ``error:`` line and exit code 2.
"""

if not __package__:  # run as a script: import this project from the folder that holds it
    import os
    import sys

    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))
    __package__ = f"{os.path.basename(os.path.dirname(_HERE))}.{os.path.basename(_HERE)}"

from fastreid.engine import default_argument_parser
from fastreid.engine.cli import run

from .fastcls import ClsTrainer

if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    run(args, trainer_cls=ClsTrainer)
