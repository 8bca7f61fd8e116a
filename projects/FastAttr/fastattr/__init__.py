"""FastAttr: pedestrian attribute recognition. Importing it registers AttrBaseline, AttrHead,
AttrEvaluator and the datasets PA100K, Market1501Attr, DukeMTMCAttr and SyntheticAttr."""

from . import datasets, modeling
from .config import add_attr_config
from .evaluation import AttrEvaluator, attribute_metrics
from .trainer import AttrTrainer

__all__ = [
    "add_attr_config",
    "AttrEvaluator",
    "AttrTrainer",
    "attribute_metrics",
    "datasets",
    "modeling",
]
