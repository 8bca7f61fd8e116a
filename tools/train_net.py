#!/usr/bin/env python
"""Train or evaluate a model from a config (FastReID's command line).

    python tools/train_net.py --config-file configs/Market1501/bagtricks_R50.yml
    python tools/train_net.py --config-file X --num-gpus 4 SOLVER.IMS_PER_BATCH 256
    python tools/train_net.py --config-file X --resume
    python tools/train_net.py --config-file X --eval-only MODEL.WEIGHTS logs/x/model_final.pth

Projects copy this file and pass their own ``DefaultTrainer`` subclass to ``main``.

Bad input (a wrong config key, a missing file, ...) ends with one ``error:`` line naming the
fix and exit code 2; ``FASTREID_DEBUG=1`` shows the full traceback.
"""

from fastreid.engine import default_argument_parser, launch
from fastreid.engine.cli import main
from fastreid.utils.errors import exit_on_bad_input


def main_reporting_bad_input(args):
    """``main`` in each process, with bad input reported as one line (exit code 2)."""
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
