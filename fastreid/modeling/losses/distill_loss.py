"""Knowledge-distillation losses: logit divergences and the overhaul feature loss.

* :func:`kl_divergence_loss` / :func:`logit_distillation_loss`: divergences between the
  teacher's and the student's softened class distributions (FastReID's "JS-div" is the
  symmetric KL of Hinton-style KD at temperature T).
* :func:`overhaul_distillation_loss`: the partial L2 of Heo et al., "A Comprehensive Overhaul
  of Feature Distillation" (ICCV 2019), between pre-ReLU features.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "DIVERGENCES",
    "kl_divergence_loss",
    "logit_distillation_loss",
    "overhaul_distillation_loss",
    "partial_l2",
]

# KD.DIVERGENCE values.
DIVERGENCES = ("symmetric_kl", "js", "kl")


def kl_divergence_loss(
    student_logits: torch.Tensor, target_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``KL(softmax(target/T) || softmax(student/T)) * T^2``, averaged over the batch.

    Args:
        student_logits, target_logits: ``(B, C)``. Gradients flow into both (detach the
            teacher's yourself); the ``T^2`` keeps gradient magnitudes independent of ``T``.
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    p_target = F.softmax(target_logits / temperature, dim=1)
    kl = F.kl_div(log_p_student, p_target, reduction="sum")
    return kl * (temperature**2) / student_logits.shape[0]


def _js_divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The true Jensen-Shannon divergence ``(KL(p_t||m) + KL(p_s||m)) / 2``, ``m`` the mixture,
    times ``T^2``, averaged over the batch."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)
    # log m = log((p_s + p_t) / 2), computed stably in log space.
    log_m = torch.logsumexp(torch.stack([log_p_s, log_p_t]), dim=0) - torch.log(
        torch.tensor(2.0, dtype=log_p_s.dtype, device=log_p_s.device)
    )
    kl_t = (log_p_t.exp() * (log_p_t - log_m)).sum()
    kl_s = (log_p_s.exp() * (log_p_s - log_m)).sum()
    return (kl_t + kl_s) / 2 * (temperature**2) / student_logits.shape[0]


def logit_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 16.0,
    divergence: str = "symmetric_kl",
) -> torch.Tensor:
    """Distance between the student's and the teacher's softened class distributions.

    Args:
        student_logits: ``(B, C)`` margin-free logits of the student.
        teacher_logits: ``(B, C)`` of the teacher; detached here (no gradient reaches it).
        temperature: softmax temperature T (FastReID uses 16).
        divergence: ``"symmetric_kl"``: ``(KL(t||s) + KL(s||t)) / 2``, FastReID's "JS-div";
            the student's softmax in the second term is not detached, as in FastReID.
            ``"js"``: the true Jensen-Shannon divergence. ``"kl"``: ``KL(t||s)`` (Hinton KD).
            All are scaled by ``T^2`` and averaged over the batch.
    Returns:
        scalar tensor.
    """
    if divergence not in DIVERGENCES:
        raise ValueError(
            f"KD.DIVERGENCE must be one of {', '.join(DIVERGENCES)}, got {divergence!r}."
        )
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"Student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} differ; logit distillation needs teachers trained "
            "on the same identities (the same MODEL.HEADS.NUM_CLASSES)."
        )
    teacher_logits = teacher_logits.detach()
    if divergence == "kl":
        return kl_divergence_loss(student_logits, teacher_logits, temperature)
    if divergence == "js":
        return _js_divergence(student_logits, teacher_logits, temperature)
    return (
        kl_divergence_loss(student_logits, teacher_logits, temperature)
        + kl_divergence_loss(teacher_logits, student_logits, temperature)
    ) / 2


def partial_l2(
    student_feat: torch.Tensor, teacher_feat: torch.Tensor, margin: torch.Tensor
) -> torch.Tensor:
    """The overhaul paper's partial L2 distance, summed over all elements.

    The teacher's pre-ReLU feature is clipped from below at ``margin`` (the expected value of
    its negative responses); positions where the teacher is negative and the student is
    already below it give no loss: ``sum((s - t')^2 * [(s > t') or (t' > 0)])``,
    ``t' = max(t, margin)``.

    Args:
        student_feat: ``(B, C, h, w)`` the student's feature mapped to the teacher's channels.
        teacher_feat: ``(B, C, h, w)`` the teacher's pre-ReLU feature.
        margin: broadcastable to the features, e.g. ``(1, C, 1, 1)``.
    """
    target = torch.maximum(teacher_feat, margin.to(teacher_feat.dtype))
    mask = ((student_feat > target) | (target > 0)).to(student_feat.dtype)
    return ((student_feat - target) ** 2 * mask).sum()


def overhaul_distillation_loss(
    student_feats: Sequence[torch.Tensor],
    teacher_feats: Sequence[torch.Tensor],
    margins: Sequence[torch.Tensor],
    normalizer: float = 10000.0,
) -> torch.Tensor:
    """FastReID's overhaul loss for one teacher: stage ``j`` of ``n`` weighted by ``1 / 2^(n-1-j)``
    (1/8, 1/4, 1/2, 1 for four stages), divided by the batch size and ``normalizer``.

    Args:
        student_feats: per stage ``(B, C_j, h_j, w_j)``, already through the connectors.
        teacher_feats: per stage, the teacher's pre-ReLU features of the same shapes.
        margins: per stage ``(1, C_j, 1, 1)``.
    """
    if not (len(student_feats) == len(teacher_feats) == len(margins)):
        raise ValueError(
            f"Got {len(student_feats)} student, {len(teacher_feats)} teacher stage features and "
            f"{len(margins)} margins; they must match."
        )
    n = len(student_feats)
    batch = student_feats[0].shape[0]
    total = student_feats[0].new_zeros(())
    for j, (s, t, m) in enumerate(zip(student_feats, teacher_feats, margins)):
        if s.shape != t.shape:
            raise ValueError(
                f"Stage {j + 1}: the student's connector gives {tuple(s.shape)} but the teacher's "
                f"feature is {tuple(t.shape)}; teacher and student need the same input size and "
                "stage strides (MODEL.BACKBONE.LAST_STRIDE)."
            )
        total = total + partial_l2(s, t.detach(), m) / (2 ** (n - 1 - j))
    return total / batch / normalizer
