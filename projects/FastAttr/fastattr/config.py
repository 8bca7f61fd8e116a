"""The config keys FastAttr adds (FastReID's names and defaults, plus the loss normalisation)."""

from __future__ import annotations

from fastreid.config import CfgNode

__all__ = ["add_attr_config", "BCE_NORMALIZATIONS"]

# MODEL.LOSSES.BCE.NORM values: how the weighted per-element BCE terms become one number.
BCE_NORMALIZATIONS = {
    # FastReID's FastAttr: sum divided by the number of non-zero terms (about a mean over
    # batch x attributes).
    "nonzero_mean": "sum / number of non-zero terms (FastReID)",
    # The strong baseline (Jia et al. 2020): sum over the attributes, mean over the batch.
    "attribute_sum": "sum over attributes, mean over the batch (strong baseline)",
}


def add_attr_config(cfg: CfgNode) -> None:
    """Add FastAttr's keys to ``cfg`` (call before ``merge_from_file``)."""
    cfg.MODEL.LOSSES.BCE = CfgNode()
    # Weight each attribute's terms by the training set's positive ratio r:
    # exp(1 - r) for positives, exp(r) for negatives.
    cfg.MODEL.LOSSES.BCE.WEIGHT_ENABLED = True
    # Weight of the BCE loss.
    cfg.MODEL.LOSSES.BCE.SCALE = 1.0
    # Reduction of the per-element terms: nonzero_mean (FastReID) or attribute_sum
    # (the strong baseline: sum over attributes, mean over the batch).
    cfg.MODEL.LOSSES.BCE.NORM = "nonzero_mean"
    # Attribute metrics (mA, instance accuracy/precision/recall/F1) for every test set.
    cfg.TEST.EVALUATOR = "AttrEvaluator"
    # Sigmoid outputs >= THRES count as predicted positives in the metrics.
    cfg.TEST.THRES = 0.5
    # Multi-class .mat fields (Market1501-attribute's 4-class age): one_hot (one output per
    # class, 30 outputs) or fastreid (one output, 1 above the first class: FastReID's 27).
    cfg.DATASETS.ATTR_MULTI_CLASS = "one_hot"
