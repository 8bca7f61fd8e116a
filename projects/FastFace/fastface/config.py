"""FastFace's config keys (``add_face_config``), called before merging a face recipe."""

from __future__ import annotations

from fastreid.config import CfgNode

__all__ = ["add_face_config"]


def add_face_config(cfg: CfgNode) -> CfgNode:
    """Add FastFace's keys to ``cfg`` (in place; also returned).

    * ``DATASETS.REC_PATH``: an insightface ``train.rec``; its ``train.idx`` sits beside it.
      Empty: train on ``DATASETS.NAMES`` through the normal loader (e.g. ``FaceFolder``).
    * ``MODEL.BACKBONE.DROPOUT``: dropout after the iResNet's last BN.
    * ``MODEL.HEADS.PFC.ENABLED`` / ``SAMPLE_RATE``: PartialFC (class centres sharded over the
      processes, a sampled share of the negatives per step).
    * ``MODEL.HEADS.PFC.SEED``: seed of the negative sampling (each rank adds its rank).
    """
    frozen = cfg.is_frozen()
    cfg.defrost()
    cfg.DATASETS.REC_PATH = ""
    cfg.MODEL.BACKBONE.DROPOUT = 0.0
    cfg.MODEL.HEADS.PFC = CfgNode()
    cfg.MODEL.HEADS.PFC.ENABLED = False
    cfg.MODEL.HEADS.PFC.SAMPLE_RATE = 0.1
    cfg.MODEL.HEADS.PFC.SEED = 0
    if frozen:
        cfg.freeze()
    return cfg
