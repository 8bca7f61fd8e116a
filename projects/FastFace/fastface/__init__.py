"""FastFace: face recognition on the fastreid core (iResNet, CosFace/ArcFace, PartialFC,
insightface data formats, 10-fold verification).

Importing this package registers its backbone, head, meta-architecture, datasets and
evaluator into the core registries.
"""

from .config import add_face_cfg, add_face_config
from .iresnet import IResNet, build_iresnet_backbone
from .modeling import FaceBaseline, FaceHead

__all__ = [
    "add_face_cfg",
    "add_face_config",
    "IResNet",
    "build_iresnet_backbone",
    "FaceBaseline",
    "FaceHead",
]
