"""The Market-1501 evaluation rule: which (query, gallery) pairs count.

One function, used by the rank metrics, the ROC figures and the visualizer, so they never
disagree. A pair is left out when

* either image is junk (pid < 0; Market-1501's ``-1``), or
* both show the same identity seen by the same camera (the query's own shot).

Distractors (pid 0) are ordinary identities: they stay in the gallery as false matches.
A query whose row keeps no true match is skipped (and counted) by the rank metrics.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = ["is_junk", "market1501_keep"]

Labels = TypeVar("Labels", np.ndarray, torch.Tensor)


def is_junk(pids: Labels) -> Labels:
    """True for junk images (pid < 0), which never take part in a pair."""
    return pids < 0


def market1501_keep(q_pids: Labels, q_camids: Labels, g_pids: Labels, g_camids: Labels) -> Labels:
    """Boolean mask of the pairs the Market-1501 protocol keeps, elementwise with broadcasting.

    Works on numpy arrays and torch tensors alike. For a (Q, G) mask pass the query labels as
    a column and the gallery labels as a row, e.g. ``market1501_keep(q_pids[:, None],
    q_camids[:, None], g_pids[None, :], g_camids[None, :])``; for a list of pairs pass
    matching 1-d arrays.
    """
    same_view = (q_pids == g_pids) & (q_camids == g_camids)
    return ~is_junk(q_pids) & ~is_junk(g_pids) & ~same_view
