"""Model-side seams: precise BN without training side effects, margin-free logits in eval,
frozen models, declared attributes instead of class-name checks, per-rank buffers."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastreid.engine.buffer_sync import averaged_buffers
from fastreid.modeling import build_model
from fastreid.modeling.heads import ClasHead, EmbeddingHead
from fastreid.modeling.meta_arch.baseline import check_head_input
from fastreid.utils.precision_bn import in_bn_statistics_pass, update_bn_stats

from .test_meta_arch import TinyBackbone, batch, tiny_baseline, tiny_cfg


def _moco():
    cfg = tiny_cfg(**{"MODEL.META_ARCHITECTURE": "MoCo", "MODEL.QUEUE_SIZE": 12})
    model = build_model(cfg)
    model(batch(cfg))  # one training step's side effects: queue filled, key encoder moved
    return cfg, model


def test_precise_bn_leaves_moco_queue_and_key_encoder_unchanged():
    cfg, model = _moco()
    with torch.no_grad():  # make the query encoder differ from the key encoder
        for p in model.heads.parameters():
            p.add_(0.5)
    queue = {k: v.clone() for k, v in model.memory.state_dict().items()}
    keys = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.startswith(("key_backbone.", "key_heads."))
    }
    query_bn = model.heads.bottleneck[0]
    before = query_bn.running_mean.clone()
    batches = [batch(cfg) for _ in range(3)]
    update_bn_stats(model, iter(batches), num_iters=3)

    for k, v in model.memory.state_dict().items():
        assert torch.equal(v, queue[k]), k
    state = model.state_dict()
    for k, v in keys.items():
        assert torch.equal(state[k], v), k
    # The query encoder's BN did get the exact mean of the batches' neck inputs.
    assert not torch.equal(query_bn.running_mean, before)
    model.eval()
    with torch.no_grad():
        pooled = torch.cat(
            [
                model.backbone(model.preprocess_image(b)).mean(dim=(2, 3))
                for b in batches  # GlobalAvgPool input of the BNNeck
            ]
        )
    means = pooled.view(3, -1, pooled.size(1)).mean(dim=1).mean(dim=0)
    assert torch.allclose(query_bn.running_mean, means, atol=1e-5)


def test_bn_statistics_pass_flag_is_scoped():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(in_bn_statistics_pass())
            return x

    model = nn.Sequential(nn.BatchNorm1d(2), Probe())
    update_bn_stats(model, itertools.repeat(torch.randn(4, 2)), num_iters=2)
    assert seen == [True, True] and not in_bn_statistics_pass()


@pytest.mark.parametrize("head_cls", [EmbeddingHead, ClasHead])
@pytest.mark.parametrize("cls_type", ["Linear", "CosSoftmax"])
def test_heads_give_margin_free_logits_in_eval_mode(head_cls, cls_type):
    torch.manual_seed(0)
    head = head_cls(feat_dim=8, num_classes=5, cls_type=cls_type, scale=4.0, margin=0.3)
    x = torch.randn(6, 8, 2, 2)
    targets = torch.arange(6) % 5
    train_out = head.train()(x, targets)
    head.eval()
    eval_out = head(x, with_logits=True)
    neck = head.bottleneck(head.pool_layer(x))[..., 0, 0]
    if cls_type == "Linear":  # independent plain reference
        expected = 4.0 * neck @ head.weight.t()
    else:
        expected = 4.0 * F.normalize(neck) @ F.normalize(head.weight).t()
    assert torch.allclose(eval_out["pred_class_logits"], expected, atol=1e-5)
    assert torch.allclose(eval_out["features"], neck, atol=1e-6)
    # Without the flag eval keeps its old output.
    plain = head(x)
    assert torch.allclose(plain, expected if head_cls is ClasHead else neck, atol=1e-5)
    # Training logits with a margin differ from the margin-free ones only for CosSoftmax.
    same = torch.allclose(train_out["cls_outputs"], train_out["pred_class_logits"])
    assert same == (cls_type == "Linear")


def test_metric_feat_dim_is_declared_by_the_head():
    assert EmbeddingHead(feat_dim=8, num_classes=2, embedding_dim=4).metric_feat_dim == 8
    assert (
        EmbeddingHead(feat_dim=8, num_classes=2, embedding_dim=4, neck_feat="after").metric_feat_dim
        == 4
    )
    assert ClasHead(feat_dim=8, num_classes=2, embedding_dim=4).metric_feat_dim == 4


def test_flatten_head_input_check_uses_the_class_not_its_name():
    class Flatten(nn.Module):  # same name, another class: must not bypass the check
        pass

    head = EmbeddingHead(feat_dim=16, num_classes=2)
    head.pool_layer = Flatten()
    with pytest.raises(ValueError, match="FEAT_DIM"):
        check_head_input(TinyBackbone(8), head)
    check_head_input(
        TinyBackbone(8), EmbeddingHead(feat_dim=16, num_classes=2, pool_type="Flatten")
    )


def test_frozen_model_stays_eval_and_outside_parameters():
    student = tiny_baseline()
    teacher = tiny_baseline()
    student.add_frozen_model("teacher", teacher)
    student.train()
    assert student.training and not teacher.training
    assert not any(k.startswith("teacher") for k in student.state_dict())
    assert {id(p) for p in student.parameters()}.isdisjoint(id(p) for p in teacher.parameters())
    with pytest.raises(KeyError, match="teacher"):
        student.add_frozen_model("teacher", tiny_baseline())
    with pytest.raises(KeyError, match="heads"):
        student.add_frozen_model("heads", tiny_baseline())
    out = teacher.head_outputs({"images": torch.rand(2, 3, 8, 8)})
    assert out["pred_class_logits"].shape == (2, 4)


def test_losses_receive_extra_inputs_without_a_new_forward():
    class WithKD(type(tiny_baseline())):
        def extra_loss_inputs(self, batched_inputs, images, outputs):
            return {"offset": torch.tensor(2.0)}

        def losses(self, outputs, gt_labels, **extra):
            loss_dict = super().losses(outputs, gt_labels)
            loss_dict["loss_extra"] = extra["offset"] * 1.0
            return loss_dict

    base = tiny_baseline()
    model = WithKD(
        backbone=base.backbone, heads=base.heads, pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3
    )
    out = model({"images": torch.rand(4, 3, 8, 8), "targets": torch.tensor([0, 0, 1, 1])})
    assert out["loss_extra"].item() == 2.0 and "loss_cls" in out


def test_per_rank_buffers_opt_out_of_averaging():
    model = tiny_baseline()
    shard = nn.Module()
    shard.register_buffer("centres", torch.zeros(3))
    shard.per_rank_state = True
    model.shard = shard
    model.heads.register_buffer("ema", torch.zeros(2))
    model.heads.register_buffer("own", torch.zeros(2))
    model.heads.per_rank_buffers = {"own"}
    averaged = {id(b) for b in averaged_buffers(model)}
    assert id(model.shard.centres) not in averaged
    assert id(model.heads.own) not in averaged
    assert id(model.heads.ema) in averaged
    assert id(model.heads.bottleneck[0].running_mean) in averaged
