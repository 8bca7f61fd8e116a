"""FastAttr's model parts (registered in the core registries)."""

from .attr_baseline import AttrBaseline
from .attr_head import AttrHead
from .bce_loss import attribute_weights, weighted_bce_loss

__all__ = ["AttrBaseline", "AttrHead", "attribute_weights", "weighted_bce_loss"]
