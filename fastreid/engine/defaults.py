"""FastReID's module name for the standard set-up and trainer, kept so its imports work:
the code lives in :mod:`fastreid.engine.setup` and :mod:`fastreid.engine.trainer`."""

from .buffer_sync import average_buffers, averaged_buffers
from .setup import default_argument_parser, default_setup, resolve_device
from .trainer import DefaultTrainer, ExtraOptimizer

__all__ = [
    "default_argument_parser",
    "default_setup",
    "resolve_device",
    "DefaultTrainer",
    "ExtraOptimizer",
    "average_buffers",
    "averaged_buffers",
]
