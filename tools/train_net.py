#!/usr/bin/env python
"""Train or evaluate a model from a config (FastReID's command line).

    python tools/train_net.py --config-file configs/Market1501/bagtricks_R50.yml
    python tools/train_net.py --config-file X --num-gpus 4 SOLVER.IMS_PER_BATCH 256
    python tools/train_net.py --config-file X --resume
    python tools/train_net.py --config-file X --eval-only MODEL.WEIGHTS logs/x/model_final.pth

Projects copy this file and pass their own ``DefaultTrainer`` subclass:
``run(args, trainer_cls=MyTrainer)``.

Bad input (a wrong config key, a missing file, ...) ends with one ``error:`` line naming the
fix and exit code 2; ``FASTREID_DEBUG=1`` shows the full traceback.
"""

from fastreid.engine import default_argument_parser
from fastreid.engine.cli import run

if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    run(args)
