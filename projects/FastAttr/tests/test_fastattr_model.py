"""AttrHead, AttrBaseline and the weighted BCE against plain references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fastreid.config import get_cfg
from fastreid.modeling import build_model
from projects.FastAttr.fastattr import add_attr_config
from projects.FastAttr.fastattr.modeling import AttrHead, attribute_weights, weighted_bce_loss


def test_weights_are_exp_one_minus_ratio_for_positives_and_exp_ratio_for_negatives():
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ratios = torch.tensor([0.2, 0.9])
    weights = attribute_weights(targets, ratios)
    expected = [[math.exp(0.8), math.exp(0.9)], [math.exp(0.2), math.exp(0.1)]]
    torch.testing.assert_close(weights, torch.tensor(expected))


def _reference(logits, targets, ratios, norm):
    rows = []
    for i in range(logits.shape[0]):
        row = []
        for j in range(logits.shape[1]):
            p = 1 / (1 + math.exp(-float(logits[i, j])))
            y = float(targets[i, j])
            term = -(y * math.log(p) + (1 - y) * math.log(1 - p))
            if ratios is not None:
                r = float(ratios[j])
                term *= math.exp(1 - r) if y > 0.5 else math.exp(r)
            row.append(term)
        rows.append(row)
    if norm == "attribute_sum":
        return sum(sum(r) for r in rows) / len(rows)
    terms = [t for r in rows for t in r]
    return sum(terms) / max(1, sum(1 for t in terms if t != 0))


@pytest.mark.parametrize("norm", ["nonzero_mean", "attribute_sum"])
@pytest.mark.parametrize("weighted", [True, False])
def test_weighted_bce_matches_the_reference(norm, weighted):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    targets = (torch.rand(6, 5, generator=gen) < 0.4).double()
    ratios = torch.rand(5, generator=gen, dtype=torch.float64) if weighted else None
    loss = weighted_bce_loss(logits, targets, ratios, norm)
    assert float(loss) == pytest.approx(_reference(logits, targets, ratios, norm), rel=1e-10)
    if not weighted and norm == "nonzero_mean":  # no zero terms: the plain mean
        expected = F.binary_cross_entropy_with_logits(logits, targets)
        assert float(loss) == pytest.approx(float(expected), rel=1e-10)


def test_unknown_norm_is_named():
    with pytest.raises(ValueError, match="MODEL.LOSSES.BCE.NORM 'mean'"):
        weighted_bce_loss(torch.zeros(1, 2), torch.zeros(1, 2), norm="mean")


def test_head_batchnorms_the_logits_and_gives_probabilities_at_eval():
    torch.manual_seed(0)
    head = AttrHead(feat_dim=8, num_classes=3, pool_type="FastGlobalAvgPool")
    features = torch.randn(5, 8, 2, 1)
    out = head(features)
    assert set(out) == {"cls_outputs", "pred_class_logits", "features"}
    # BatchNorm1d in training: each logit column normalised by its batch statistics.
    raw = out["features"] @ head.weight.t()
    mean, var = raw.mean(0), raw.var(0, unbiased=False)
    torch.testing.assert_close(out["cls_outputs"], (raw - mean) / torch.sqrt(var + 1e-5))
    assert torch.equal(out["pred_class_logits"], out["cls_outputs"])
    head.eval()
    probs = head(features)
    neck = head.bottleneck(features.mean((2, 3), keepdim=True))[..., 0, 0]
    expected = torch.sigmoid(head.bnneck(neck @ head.weight.t()))
    torch.testing.assert_close(probs, expected)
    assert head(features, with_logits=True)["pred_class_logits"].shape == (5, 3)


def _cfg(**overrides):
    cfg = get_cfg()
    add_attr_config(cfg)
    cfg.merge_from_file("projects/FastAttr/configs/Base-attribute.yml")
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.DEPTH = "18x"
    cfg.MODEL.BACKBONE.FEAT_DIM = 512
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.HEADS.NUM_CLASSES = 4
    cfg.merge_from_list([x for kv in overrides.items() for x in kv])
    return cfg


def test_baseline_trains_on_attribute_vectors():
    torch.manual_seed(0)
    model = build_model(_cfg(**{"MODEL.LOSSES.BCE.NORM": "attribute_sum"}))
    batch = {
        "images": torch.rand(4, 3, 32, 16) * 255,
        "targets": torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]]),
    }
    with pytest.raises(RuntimeError, match="set_positive_ratios"):
        model(batch)
    model.set_positive_ratios([0.5, 0.5, 0.25, 0.5])
    losses = model(batch)
    assert set(losses) == {"loss_bce"}
    losses["loss_bce"].backward()
    assert model.heads.weight.grad is not None and model.heads.weight.grad.abs().sum() > 0
    assert "positive_ratios" not in model.state_dict()  # recomputed from the data each start
    model.eval()
    probs = model(batch)
    assert probs.shape == (4, 4) and ((probs >= 0) & (probs <= 1)).all()


def test_baseline_rejects_class_ids_and_unknown_norms():
    model = build_model(_cfg(**{"MODEL.LOSSES.BCE.WEIGHT_ENABLED": False}))
    with pytest.raises(ValueError, match="attribute vectors"):
        model({"images": torch.rand(2, 3, 32, 16), "targets": torch.tensor([0, 1])})
    with pytest.raises(ValueError, match="MODEL.LOSSES.BCE.NORM"):
        build_model(_cfg(**{"MODEL.LOSSES.BCE.NORM": "mean"}))
