"""FastDistill's own code: the pre-ReLU ResNet it registers into the core backbone registry.

The meta-architectures ``Distiller`` and ``DistillerOverhaul`` live in the core
(``fastreid.modeling.meta_arch.distiller``); they are re-exported here for FastReID's imports.
"""

from fastreid.modeling.meta_arch.distiller import Distiller, DistillerOverhaul

from .resnet_distill import DistillResNet, build_resnet_backbone_distill

__all__ = ["Distiller", "DistillerOverhaul", "DistillResNet", "build_resnet_backbone_distill"]
