"""Pooling layers: output shapes, GeM values, learnable p, trace-friendliness."""

import math

import pytest
import torch

from fastreid.modeling.layers.pooling import (
    POOLING_LAYERS,
    AdaptiveAvgMaxPool,
    ClipGlobalAvgPool,
    FastGlobalAvgPool,
    Flatten,
    GeneralizedMeanPooling,
    GeneralizedMeanPoolingP,
    GlobalAvgPool,
    GlobalMaxPool,
    Identity,
    build_pooling,
)

NAMES = [
    "GlobalAvgPool",
    "GlobalMaxPool",
    "GeneralizedMeanPooling",
    "GeneralizedMeanPoolingP",
    "AdaptiveAvgMaxPool",
    "FastGlobalAvgPool",
    "ClipGlobalAvgPool",
]


@pytest.mark.parametrize("name", NAMES)
def test_pool_returns_b_c_1_1(name):
    out = build_pooling(name)(torch.rand(2, 5, 4, 3))
    assert out.shape == (2, 5, 1, 1)


def test_flatten_keeps_every_position():
    x = torch.rand(2, 5, 4, 3)
    out = Flatten()(x)
    assert out.shape == (2, 60, 1, 1)
    assert torch.equal(out[:, :, 0, 0], x.reshape(2, -1))


def test_identity_passes_through():
    x = torch.rand(2, 5, 1, 1)
    assert Identity()(x) is x


def test_avg_max_values():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    assert GlobalAvgPool()(x).item() == pytest.approx(2.5)
    assert FastGlobalAvgPool()(x).item() == pytest.approx(2.5)
    assert GlobalMaxPool()(x).item() == pytest.approx(4.0)
    assert AdaptiveAvgMaxPool()(x).item() == pytest.approx(6.5)


def test_clip_avg_pool_clamps_to_unit_interval():
    assert ClipGlobalAvgPool()(torch.full((1, 2, 2, 2), 3.0)).flatten().tolist() == [1.0, 1.0]
    assert ClipGlobalAvgPool()(torch.full((1, 2, 2, 2), -3.0)).flatten().tolist() == [0.0, 0.0]


def test_gem_p3_value():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    expected = ((1 + 8 + 27 + 64) / 4) ** (1 / 3)
    assert GeneralizedMeanPooling()(x).item() == pytest.approx(expected, rel=1e-5)


def test_gem_p1_is_average():
    x = torch.rand(2, 3, 4, 4) + 0.1
    out = GeneralizedMeanPooling(norm=1)(x)
    assert torch.allclose(out, x.mean(dim=(2, 3), keepdim=True), atol=1e-6)


def test_gem_clamps_negative_inputs():
    x = torch.tensor([-5.0, 8.0]).view(1, 1, 1, 2)
    expected = ((1e-18 + 512) / 2) ** (1 / 3)
    assert GeneralizedMeanPooling()(x).item() == pytest.approx(expected, rel=1e-5)


def test_gem_p_has_learnable_parameter_p():
    pool = GeneralizedMeanPoolingP()
    assert [n for n, _ in pool.named_parameters()] == ["p"]
    assert pool.p.shape == (1,) and pool.p.item() == 3.0
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    out = pool(x)
    assert out.item() == pytest.approx(((1 + 8 + 27 + 64) / 4) ** (1 / 3), rel=1e-5)
    out.sum().backward()
    assert pool.p.grad is not None and pool.p.grad.abs().item() > 0


def test_unknown_pool_name_lists_choices():
    with pytest.raises(KeyError, match="GeneralizedMeanPoolingP"):
        build_pooling("GemPool")


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("name", NAMES + ["Flatten", "Identity"])
def test_pool_traces_and_generalises_to_other_sizes(name):
    pool = POOLING_LAYERS[name]().eval()
    traced = torch.jit.trace(pool, torch.rand(2, 4, 6, 3))
    x = torch.rand(3, 4, 8, 4)
    assert torch.allclose(traced(x), pool(x), atol=1e-6)


def test_fast_global_avg_pool_flatten():
    assert FastGlobalAvgPool(flatten=True)(torch.rand(2, 3, 4, 4)).shape == (2, 3)


def test_gem_value_matches_loop():
    torch.manual_seed(1)
    x = torch.rand(1, 2, 3, 3)
    out = GeneralizedMeanPooling()(x)
    for c in range(2):
        vals = [v**3 for v in x[0, c].flatten().tolist()]
        assert out[0, c, 0, 0].item() == pytest.approx(math.pow(sum(vals) / 9, 1 / 3), rel=1e-5)
