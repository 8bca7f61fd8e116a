"""Losses against values computed by hand / with plain Python loops on tiny cases."""

import math

import pytest
import torch

from fastreid.modeling.losses import (
    cosine_dist,
    cross_entropy_loss,
    euclidean_dist,
    focal_loss,
    pairwise_circleloss,
    pairwise_cosface,
    triplet_loss,
)
from fastreid.modeling.losses import utils as loss_utils
from fastreid.utils import comm

LOGITS = [[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]]
LABELS = [2, 0]


def _log_softmax(row):
    z = math.log(sum(math.exp(v) for v in row))
    return [v - z for v in row]


def _ce_by_hand(eps_per_row):
    total = 0.0
    for row, t, eps in zip(LOGITS, LABELS, eps_per_row):
        lp = _log_softmax(row)
        c = len(row)
        total += -sum(((1 - eps) if j == t else eps / (c - 1)) * lp[j] for j in range(c))
    return total / len(LOGITS)


def test_cross_entropy_without_smoothing():
    loss = cross_entropy_loss(torch.tensor(LOGITS), torch.tensor(LABELS), eps=0.0)
    expected = -(_log_softmax(LOGITS[0])[2] + _log_softmax(LOGITS[1])[0]) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_fixed_smoothing():
    loss = cross_entropy_loss(torch.tensor(LOGITS), torch.tensor(LABELS), eps=0.1)
    assert loss.item() == pytest.approx(_ce_by_hand([0.1, 0.1]), rel=1e-6)


def test_cross_entropy_adaptive_smoothing():
    alpha = 0.2
    eps = [alpha * math.exp(_log_softmax(r)[t]) for r, t in zip(LOGITS, LABELS)]
    loss = cross_entropy_loss(torch.tensor(LOGITS), torch.tensor(LABELS), eps=-1.0, alpha=alpha)
    assert loss.item() == pytest.approx(_ce_by_hand(eps), rel=1e-6)


def test_cross_entropy_gradient_flows():
    logits = torch.tensor(LOGITS, requires_grad=True)
    cross_entropy_loss(logits, torch.tensor(LABELS), eps=0.1).backward()
    assert logits.grad.abs().sum() > 0


# 1-D embeddings: ids 0 at x=0 and x=1, ids 1 at x=3 and x=7.
EMB = [[0.0], [1.0], [3.0], [7.0]]
IDS = [0, 0, 1, 1]


def _dist(a, b):
    return abs(a[0] - b[0])


def _hard_pairs():
    pairs = []
    for i, a in enumerate(EMB):
        ap = max(_dist(a, b) for j, b in enumerate(EMB) if IDS[j] == IDS[i])
        an = min(_dist(a, b) for j, b in enumerate(EMB) if IDS[j] != IDS[i])
        pairs.append((ap, an))
    return pairs


def test_hard_pairs_are_what_we_think():
    assert _hard_pairs() == [(1, 3), (1, 2), (4, 2), (4, 6)]


def test_triplet_hard_mining_margin():
    loss = triplet_loss(torch.tensor(EMB), torch.tensor(IDS), 0.3, False, True)
    expected = sum(max(0.0, ap - an + 0.3) for ap, an in _hard_pairs()) / 4
    assert expected == pytest.approx(0.575)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_triplet_hard_mining_soft_margin():
    loss = triplet_loss(torch.tensor(EMB), torch.tensor(IDS), 0.0, False, True)
    expected = sum(math.log(1 + math.exp(ap - an)) for ap, an in _hard_pairs()) / 4
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_triplet_weighted_mining():
    expected = 0.0
    for i, a in enumerate(EMB):
        pos = [_dist(a, b) for j, b in enumerate(EMB) if IDS[j] == IDS[i]]  # includes itself
        neg = [_dist(a, b) for j, b in enumerate(EMB) if IDS[j] != IDS[i]]
        ap = sum(d * math.exp(d) for d in pos) / sum(math.exp(d) for d in pos)
        an = sum(d * math.exp(-d) for d in neg) / sum(math.exp(-d) for d in neg)
        expected += max(0.0, ap - an + 0.3)
    expected /= 4
    loss = triplet_loss(torch.tensor(EMB), torch.tensor(IDS), 0.3, False, False)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_triplet_weighted_mining_is_a_true_average_at_large_distances():
    emb = torch.tensor([[0.0], [1.0], [100.0], [150.0]])
    loss = triplet_loss(emb, torch.tensor(IDS), 0.0, False, False)
    # negatives are >= 50 away: the weighted negative distance must stay near those values
    assert loss.item() < 1e-6


def test_triplet_cosine_distance():
    emb = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]]
    ids = [0, 0, 1, 1]

    def d(a, b):
        na, nb = math.hypot(*a), math.hypot(*b)
        return 2 - 2 * (a[0] * b[0] + a[1] * b[1]) / (na * nb)

    expected = 0.0
    for i, a in enumerate(emb):
        ap = max(d(a, b) for j, b in enumerate(emb) if ids[j] == ids[i])
        an = min(d(a, b) for j, b in enumerate(emb) if ids[j] != ids[i])
        expected += max(0.0, ap - an + 0.5)
    expected /= 4
    # scaling the features must not matter for the cosine distance
    x = torch.tensor(emb) * torch.tensor([[1.0], [3.0], [0.5], [2.0]])
    loss = triplet_loss(x, torch.tensor(ids), 0.5, True, True)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_distance_helpers():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert euclidean_dist(x, x)[0, 1].item() == pytest.approx(5.0)
    y = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert cosine_dist(y, y).flatten().tolist() == pytest.approx([0.0, 2.0, 2.0, 0.0], abs=1e-6)


def _cos_sims(emb):
    norm = [math.sqrt(sum(v * v for v in e)) for e in emb]
    return [
        [sum(a * b for a, b in zip(x, y)) / (nx * ny) for y, ny in zip(emb, norm)]
        for x, nx in zip(emb, norm)
    ]


PAIR_EMB = [[1.0, 0.2], [0.8, 0.5], [-0.3, 1.0], [0.1, 0.9], [0.7, -0.7]]
PAIR_IDS = [0, 0, 1, 1, 2]


def _logsumexp(vals):
    if not vals:
        return -1e30
    m = max(vals)
    return m + math.log(sum(math.exp(v - m) for v in vals))


def _softplus(x):
    return math.log1p(math.exp(x)) if x < 30 else x


def test_pairwise_circle_loss_by_hand():
    m, gamma = 0.25, 8.0
    sims = _cos_sims(PAIR_EMB)
    total = 0.0
    for i in range(len(PAIR_EMB)):
        lp, ln = [], []
        for j in range(len(PAIR_EMB)):
            s = sims[i][j]
            if j != i and PAIR_IDS[j] == PAIR_IDS[i]:
                lp.append(-gamma * max(1 + m - s, 0) * (s - (1 - m)))
            elif PAIR_IDS[j] != PAIR_IDS[i]:
                ln.append(gamma * max(s + m, 0) * (s - m))
        total += _softplus(_logsumexp(lp) + _logsumexp(ln))
    expected = total / len(PAIR_EMB)
    loss = pairwise_circleloss(torch.tensor(PAIR_EMB), torch.tensor(PAIR_IDS), m, gamma)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_pairwise_cosface_by_hand():
    m, gamma = 0.25, 8.0
    sims = _cos_sims(PAIR_EMB)
    total = 0.0
    for i in range(len(PAIR_EMB)):
        lp = [-gamma * sims[i][j] for j in range(5) if j != i and PAIR_IDS[j] == PAIR_IDS[i]]
        ln = [gamma * (sims[i][j] + m) for j in range(5) if PAIR_IDS[j] != PAIR_IDS[i]]
        total += _softplus(_logsumexp(lp) + _logsumexp(ln))
    expected = total / 5
    loss = pairwise_cosface(torch.tensor(PAIR_EMB), torch.tensor(PAIR_IDS), m, gamma)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_focal_loss_by_hand():
    alpha, gamma = 0.25, 2.0
    expected = []
    for row, t in zip(LOGITS, LABELS):
        p = math.exp(_log_softmax(row)[t])
        expected.append(-alpha * (1 - p) ** gamma * math.log(p))
    x, y = torch.tensor(LOGITS), torch.tensor(LABELS)
    assert focal_loss(x, y, alpha, gamma).item() == pytest.approx(sum(expected) / 2, rel=1e-6)
    assert focal_loss(x, y, alpha, gamma, reduction="sum").item() == pytest.approx(
        sum(expected), rel=1e-6
    )
    assert focal_loss(x, y, alpha, gamma, reduction="none").tolist() == pytest.approx(
        expected, rel=1e-6
    )


def test_focal_loss_gamma_zero_is_weighted_ce():
    x, y = torch.tensor(LOGITS), torch.tensor(LABELS)
    ce = cross_entropy_loss(x, y, eps=0.0)
    assert focal_loss(x, y, 0.5, 0.0).item() == pytest.approx(0.5 * ce.item(), rel=1e-6)


def _fake_two_ranks(monkeypatch, rank, other):
    """Pretend to be ``rank`` of 2 processes; the other rank holds ``other`` (per input name)."""
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(comm, "get_rank", lambda: rank)

    def all_gather_tensor(t):
        o = other[t.dtype]
        return torch.cat([t, o] if rank == 0 else [o, t], dim=0)

    monkeypatch.setattr(comm, "all_gather_tensor", all_gather_tensor)
    # The other rank's gradient of the gathered tensor (zero unless a test says otherwise).
    monkeypatch.setattr(comm, "all_reduce_sum", lambda t: t)


def test_gather_sends_each_rank_the_summed_gradient_of_its_rows(monkeypatch):
    _fake_two_ranks(monkeypatch, 1, {torch.float32: torch.ones(2, 3)})
    other_rank_grad = torch.arange(12.0).reshape(4, 3)  # what rank 0's loss sends back
    monkeypatch.setattr(comm, "all_reduce_sum", lambda t: t + other_rank_grad)
    x = torch.rand(2, 3, requires_grad=True)
    out = loss_utils.all_gather_with_grad(x)
    assert out.shape == (4, 3)
    assert torch.equal(out[:2], torch.ones(2, 3)) and torch.equal(out[2:], x)
    weights = torch.rand(4, 3)
    (out * weights).sum().backward()
    # This rank owns rows 2..3: its own gradient there plus rank 0's.
    torch.testing.assert_close(x.grad, weights[2:] + other_rank_grad[2:])


def test_triplet_compares_local_anchors_with_all_ranks(monkeypatch):
    # This rank holds x=0 (id 0) and x=7 (id 1); the other rank x=1 (id 0) and x=3 (id 1).
    _fake_two_ranks(
        monkeypatch,
        0,
        {torch.float32: torch.tensor([[1.0], [3.0]]), torch.int64: torch.tensor([0, 1])},
    )
    emb = torch.tensor([[0.0], [7.0]], requires_grad=True)
    loss = triplet_loss(emb, torch.tensor([0, 1]), 0.3, False, True)
    # anchor 0: farthest positive 1 (remote), closest negative 3 (remote) -> 0;
    # anchor 7: farthest positive 4 (to remote 3), closest negative 6 (to remote 1) -> 0.
    # With margin 3: (1 - 3 + 3) + (4 - 6 + 3) = 2 -> mean 1.
    assert loss.item() == pytest.approx(0.0, abs=1e-5)
    loss3 = triplet_loss(emb, torch.tensor([0, 1]), 3.0, False, True)
    assert loss3.item() == pytest.approx(1.0, abs=1e-5)
    loss3.backward()
    assert emb.grad is not None
