"""Attribute datasets (registered in the core DATASET_REGISTRY)."""

from .bases import AttrDataset, attribute_item, check_same_attributes, positive_ratios
from .market_attr import (
    MULTI_CLASS_FIELDS,
    DukeMTMCAttr,
    Market1501Attr,
    MarketAttrLayout,
    SyntheticAttr,
    read_identity_attributes,
)
from .pa100k import PA100K, read_pa100k_annotation
from .synthetic_mat import MARKET_ATTRIBUTE_FILE, MARKET_FIELDS, write_market_attribute_mat

__all__ = [
    "AttrDataset",
    "attribute_item",
    "check_same_attributes",
    "positive_ratios",
    "MULTI_CLASS_FIELDS",
    "DukeMTMCAttr",
    "Market1501Attr",
    "MarketAttrLayout",
    "SyntheticAttr",
    "read_identity_attributes",
    "PA100K",
    "read_pa100k_annotation",
    "MARKET_ATTRIBUTE_FILE",
    "MARKET_FIELDS",
    "write_market_attribute_mat",
]
