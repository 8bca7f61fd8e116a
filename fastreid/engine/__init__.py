"""Training engine: the loop, its hooks, DefaultTrainer and distributed launch."""

from .hooks import (
    BestCheckpointer,
    CallbackHook,
    EvalHook,
    IterationTimer,
    LayerFreeze,
    LRScheduler,
    PeriodicCheckpointer,
    PeriodicWriter,
    PreciseBN,
    ProgressBar,
)
from .launch import launch
from .setup import default_argument_parser, default_setup, resolve_device
from .train_loop import AMPTrainer, HookBase, SimpleTrainer, TrainerBase
from .trainer import DefaultTrainer, ExtraOptimizer

__all__ = [
    "AMPTrainer",
    "CallbackHook",
    "DefaultTrainer",
    "EvalHook",
    "ExtraOptimizer",
    "HookBase",
    "IterationTimer",
    "LayerFreeze",
    "LRScheduler",
    "BestCheckpointer",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "PreciseBN",
    "ProgressBar",
    "SimpleTrainer",
    "TrainerBase",
    "default_argument_parser",
    "default_setup",
    "launch",
    "resolve_device",
]
