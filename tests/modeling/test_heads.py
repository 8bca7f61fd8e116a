"""EmbeddingHead / ClasHead: FastReID's module names, outputs in training and eval."""

import pytest
import torch
import torch.nn.functional as F

from fastreid.config import get_cfg
from fastreid.modeling.heads import REID_HEADS_REGISTRY, ClasHead, EmbeddingHead, build_heads


def _head(**kw):
    args = dict(feat_dim=16, num_classes=5, with_bnneck=True)
    args.update(kw)
    return EmbeddingHead(**args)


def test_registry_has_both_heads():
    assert "EmbeddingHead" in REID_HEADS_REGISTRY and "ClasHead" in REID_HEADS_REGISTRY


def test_fastreid_parameter_names_and_shapes():
    head = _head(embedding_dim=8, pool_type="GeneralizedMeanPoolingP")
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        "weight": (5, 8),
        "pool_layer.p": (1,),
        "bottleneck.0.weight": (8, 16, 1, 1),
        "bottleneck.1.weight": (8,),
        "bottleneck.1.bias": (8,),
        "bottleneck.1.running_mean": (8,),
        "bottleneck.1.running_var": (8,),
        "bottleneck.1.num_batches_tracked": (),
    }


def test_bnneck_bias_is_frozen_and_conv_has_no_bias():
    head = _head(embedding_dim=8)
    assert head.bottleneck[0].bias is None
    assert not head.bottleneck[1].bias.requires_grad
    assert head.bottleneck[1].weight.requires_grad


def test_no_bnneck_no_reduction_gives_empty_bottleneck():
    head = _head(with_bnneck=False)
    assert len(head.bottleneck) == 0
    head.eval()
    x = torch.rand(2, 16, 4, 2)
    assert torch.allclose(head(x), x.mean(dim=(2, 3)), atol=1e-6)


def test_training_outputs_keys_and_shapes():
    head = _head(embedding_dim=8)
    out = head(torch.rand(4, 16, 4, 2), torch.tensor([0, 1, 2, 3]))
    assert set(out) == {"cls_outputs", "pred_class_logits", "features"}
    assert out["cls_outputs"].shape == (4, 5)
    assert out["pred_class_logits"].shape == (4, 5)
    assert out["features"].shape == (4, 16)  # "before": pooled, before the reduction


def test_neck_feat_before_returns_pooled_feature():
    head = _head()
    x = torch.rand(4, 16, 4, 2)
    out = head(x, torch.tensor([0, 1, 2, 3]))
    assert torch.allclose(out["features"], x.mean(dim=(2, 3)), atol=1e-6)


def test_neck_feat_after_returns_bnneck_output():
    head = _head(neck_feat="after")
    x = torch.rand(4, 16, 4, 2)
    out = head(x, torch.tensor([0, 1, 2, 3]))
    pooled = x.mean(dim=(2, 3))
    # Training BN with weight 1, bias 0: per-channel standardisation with the batch statistics.
    expected = (pooled - pooled.mean(0)) / torch.sqrt(pooled.var(0, unbiased=False) + 1e-5)
    assert torch.allclose(out["features"], expected, atol=1e-4)


def test_eval_returns_neck_feature():
    head = _head(embedding_dim=8).eval()
    x = torch.rand(3, 16, 4, 2)
    feat = head(x)
    assert feat.shape == (3, 8)
    expected = head.bottleneck(x.mean(dim=(2, 3), keepdim=True))[..., 0, 0]
    assert torch.allclose(feat, expected, atol=1e-6)


def test_linear_logits_are_dot_products_times_scale():
    head = _head(with_bnneck=False, scale=2.0)
    x = torch.rand(2, 16, 1, 1)
    out = head(x, torch.tensor([0, 1]))
    expected = x[:, :, 0, 0] @ head.weight.t() * 2.0
    assert torch.allclose(out["pred_class_logits"], expected, atol=1e-6)
    assert torch.allclose(out["cls_outputs"], expected, atol=1e-6)


def test_margin_layer_uses_cosines_and_margin_free_pred_logits():
    head = _head(with_bnneck=False, cls_type="CosSoftmax", scale=10.0, margin=0.3)
    x = torch.rand(2, 16, 1, 1)
    targets = torch.tensor([1, 3])
    out = head(x, targets)
    cos = F.normalize(x[:, :, 0, 0]) @ F.normalize(head.weight).t()
    assert torch.allclose(out["pred_class_logits"], cos * 10.0, atol=1e-5)
    margin = torch.zeros_like(cos)
    margin[0, 1] = margin[1, 3] = 0.3
    assert torch.allclose(out["cls_outputs"], (cos - margin) * 10.0, atol=1e-5)


def test_config_door_equals_explicit_door():
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "MODEL.BACKBONE.FEAT_DIM", 16, "MODEL.HEADS.NUM_CLASSES", 5,
            "MODEL.HEADS.EMBEDDING_DIM", 8, "MODEL.HEADS.WITH_BNNECK", True,
            "MODEL.HEADS.POOL_LAYER", "GeneralizedMeanPoolingP",
            "MODEL.HEADS.CLS_LAYER", "CircleSoftmax", "MODEL.HEADS.SCALE", 64,
            "MODEL.HEADS.MARGIN", 0.35, "MODEL.HEADS.NECK_FEAT", "after",
        ]
    )  # fmt: skip
    a = build_heads(cfg)
    b = EmbeddingHead(
        feat_dim=16, num_classes=5, embedding_dim=8, with_bnneck=True, neck_feat="after",
        pool_type="GeneralizedMeanPoolingP", cls_type="CircleSoftmax", scale=64, margin=0.35,
    )  # fmt: skip
    assert repr(a) == repr(b)
    assert a.neck_feat == "after" and a.cls_layer.s == 64 and a.cls_layer.m == 0.35
    # explicit keywords win over the config
    assert EmbeddingHead(cfg, num_classes=7).weight.shape == (7, 8)


def test_zero_classes_is_a_clear_error_in_training():
    head = EmbeddingHead(feat_dim=16, num_classes=0)
    with pytest.raises(RuntimeError, match="MODEL.HEADS.NUM_CLASSES"):
        head(torch.rand(2, 16, 2, 2), torch.tensor([0, 1]))
    # eval (feature extraction) still works without a classifier
    assert head.eval()(torch.rand(2, 16, 2, 2)).shape == (2, 16)


def test_invalid_neck_feat_and_cls_layer():
    with pytest.raises(ValueError, match="NECK_FEAT"):
        _head(neck_feat="middle")
    with pytest.raises(KeyError, match="CLS_LAYER"):
        _head(cls_type="AMSoftmax")


def test_clas_head_returns_logits_in_eval():
    head = ClasHead(feat_dim=16, num_classes=5, with_bnneck=True, scale=3.0).eval()
    x = torch.rand(2, 16, 3, 3)
    logits = head(x)
    assert logits.shape == (2, 5)
    neck = head.bottleneck(x.mean(dim=(2, 3), keepdim=True)).flatten(1)
    assert torch.allclose(logits, neck @ head.weight.t() * 3.0, atol=1e-5)
    head.train()
    out = head(x, torch.tensor([0, 1]))
    assert out["features"].shape == (2, 16) and out["cls_outputs"].shape == (2, 5)
