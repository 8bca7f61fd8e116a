"""FastFace's config keys (``add_face_config``), called before merging a face recipe."""

from __future__ import annotations

from fastreid.config import CfgNode

__all__ = ["add_face_config", "add_face_cfg"]


def add_face_config(cfg: CfgNode) -> CfgNode:
    """Add FastFace's keys to ``cfg`` (in place; also returned).

    * ``DATASETS.REC_PATH``: an insightface ``train.rec``; its ``train.idx`` sits beside it.
      Empty: train on ``DATASETS.NAMES`` through the normal loader (e.g. ``FaceFolder``).
    * ``MODEL.BACKBONE.DROPOUT``: dropout after the iResNet's last BN.
    * ``MODEL.HEADS.PFC.ENABLED`` / ``SAMPLE_RATE``: PartialFC (class centres sharded over the
      processes, a sampled share of the negatives per step).
    * ``MODEL.HEADS.PFC.SEED``: seed of the negative sampling (each rank adds its rank).
    * ``MODEL.HEADS.PFC.CLIP_NORM``: the PartialFC step clips the model's gradient (backbone
      and head) at this L2 norm, as FastReID does (5); 0 turns it off.
    * ``MODEL.HEADS.PFC.MAX_CLIP_SCALER``: with fp16 AMP, FastReID's grad scaler: starts at
      the per-process batch size and never grows past 128 times it.
    * ``MODEL.HEADS.PFC.WEIGHTS``: FastReID PartialFC shards to start the centres from: its
      output folder (``last_weight_{rank}`` tags) or a file, ``{rank}`` standing for the
      two-digit rank (``softmax_weight_{rank}.pth``).
    """
    with cfg.unfrozen():
        cfg.DATASETS.REC_PATH = ""
        cfg.MODEL.BACKBONE.DROPOUT = 0.0
        cfg.MODEL.HEADS.PFC = CfgNode()
        cfg.MODEL.HEADS.PFC.ENABLED = False
        cfg.MODEL.HEADS.PFC.SAMPLE_RATE = 0.1
        cfg.MODEL.HEADS.PFC.SEED = 0
        cfg.MODEL.HEADS.PFC.CLIP_NORM = 5.0
        cfg.MODEL.HEADS.PFC.MAX_CLIP_SCALER = True
        cfg.MODEL.HEADS.PFC.WEIGHTS = ""
    return cfg


# FastReID's name for the same function.
add_face_cfg = add_face_config
