#!/usr/bin/env python
"""Train or evaluate an image-retrieval model (FastReID's command line).

    python projects/FastRetri/train_net.py --config-file projects/FastRetri/configs/cub.yml
    python projects/FastRetri/train_net.py \
        --config-file projects/FastRetri/configs/fashion_mnist_zeroshot.yml \
        DATASETS.ROOT /usr/share/datasets
    python projects/FastRetri/train_net.py --config-file X --eval-only \
        MODEL.WEIGHTS logs/x/model_final.pth

--eval-only without MODEL.WEIGHTS evaluates random weights. Bad input ends with one
``error:`` line and exit code 2.
"""

if not __package__:  # run as a script: import this project from the folder that holds it
    import os
    import sys

    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))
    __package__ = f"{os.path.basename(os.path.dirname(_HERE))}.{os.path.basename(_HERE)}"

from fastreid.engine import default_argument_parser
from fastreid.engine.cli import run

from .fastretri import RetriTrainer

if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    run(args, trainer_cls=RetriTrainer)
