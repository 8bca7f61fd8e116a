"""The ``TUNE`` config section: the search space and the search settings.

Nothing here imports Ray; the search itself (``fasttune.search``) does, when it runs.
"""

from __future__ import annotations

from fastreid.config import CfgNode

__all__ = ["add_tune_config", "TUNE_KEYS_PREFIX"]

TUNE_KEYS_PREFIX = "TUNE."


def add_tune_config(cfg: CfgNode) -> CfgNode:
    """Add the ``TUNE`` keys to ``cfg`` (call before ``merge_from_file``); returns ``cfg``.

    ``TUNE.SPACE`` maps config keys to distributions, e.g.::

        TUNE:
          SPACE:
            SOLVER.BASE_LR: {loguniform: [1.0e-4, 1.0e-2]}
            DATALOADER.NUM_INSTANCE: {choice: [2, 4, 8]}

    An empty space searches FastReID's batch size / instances-per-id space.
    """
    cfg.TUNE = CfgNode()
    # Config key -> distribution (see fasttune.space for the forms accepted).
    cfg.TUNE.SPACE = CfgNode(new_allowed=True)
    # A YAML file holding such a mapping; when set it replaces TUNE.SPACE.
    cfg.TUNE.SPACE_FILE = ""
    # Name of the search (its folder under OUTPUT_DIR); empty: the search algorithm's name.
    cfg.TUNE.NAME = ""
    # Seed of the search algorithm (which configurations it proposes).
    cfg.TUNE.SEED = 0
    # Trials running at once (0: FastReID's 4 with BOHB, else as many as resources allow).
    cfg.TUNE.MAX_CONCURRENT = 0
    # Early-stopping schedulers: reports a trial always gets (FastReID: 2), keep-1-in-N rate.
    cfg.TUNE.GRACE_PERIOD = 2
    cfg.TUNE.REDUCTION_FACTOR = 3
    # PBT: reports between two exploit/explore steps (FastReID: 2).
    cfg.TUNE.PERTURBATION_INTERVAL = 2
    # Checkpoints (full trainer state) kept per trial (FastReID: 10); PBT keeps all.
    cfg.TUNE.NUM_TO_KEEP = 10
    # Configurations tried first, e.g. [{SOLVER.BASE_LR: 3.5e-4}] (HyperOpt's start point).
    cfg.TUNE.POINTS_TO_EVALUATE = []
    # Processes per trial: >1 trains each trial as a DDP group (gloo on CPU, NCCL on GPU).
    cfg.TUNE.WORKERS_PER_TRIAL = 1
    return cfg
