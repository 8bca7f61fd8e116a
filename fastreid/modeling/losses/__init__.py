"""Loss functions; each returns a scalar tensor. The meta-archs pick them by MODEL.LOSSES.NAME."""

from .circle_loss import pairwise_circleloss
from .cosface_loss import pairwise_cosface
from .cross_entropy_loss import cross_entropy_loss
from .distill_loss import logit_distillation_loss, overhaul_distillation_loss
from .focal_loss import focal_loss
from .triplet_loss import triplet_loss
from .utils import cosine_dist, euclidean_dist

__all__ = [
    "cross_entropy_loss",
    "triplet_loss",
    "pairwise_circleloss",
    "pairwise_cosface",
    "focal_loss",
    "logit_distillation_loss",
    "overhaul_distillation_loss",
    "euclidean_dist",
    "cosine_dist",
]
