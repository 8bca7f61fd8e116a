"""FastTune: hyper-parameter search over any config key with Ray Tune.

Importing this package does not import Ray; :mod:`fasttune.search` and the trial code
import it when a search runs.
"""

from .config import add_tune_config
from .space import FASTREID_SPACE, Param, apply_params, parse_space, space_from_cfg
from .trainer import TuneReportHook, TuneTrainer, num_reports, restore_trainer_state, trial_metrics

__all__ = [
    "FASTREID_SPACE",
    "Param",
    "TuneReportHook",
    "TuneTrainer",
    "add_tune_config",
    "apply_params",
    "num_reports",
    "parse_space",
    "restore_trainer_state",
    "space_from_cfg",
    "trial_metrics",
]
