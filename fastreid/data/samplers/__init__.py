"""Samplers: shuffled/inference index streams and P x K identity samplers."""

from .data_sampler import InferenceSampler, TrainingSampler
from .identity_sampler import BalancedIdentitySampler, NaiveIdentitySampler, SetReWeightSampler

__all__ = [
    "BalancedIdentitySampler",
    "InferenceSampler",
    "NaiveIdentitySampler",
    "SetReWeightSampler",
    "TrainingSampler",
]
