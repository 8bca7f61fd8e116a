"""Backbone building blocks: IBN-a, SE, non-local, split attention."""

from __future__ import annotations

import torch

from fastreid.modeling.layers.ibn import IBN
from fastreid.modeling.layers.non_local import NonLocalBlock
from fastreid.modeling.layers.se_layer import SELayer
from fastreid.modeling.layers.splat import SplAtConv2d


def test_ibn_normalises_half_the_channels_per_instance():
    layer = IBN(64)
    assert layer.IN.num_features == 32 and layer.IN.affine
    assert layer.BN.num_features == 32
    x = torch.randn(4, 64, 8, 4) * 3 + 5
    out = layer.train()(x)
    assert out.shape == x.shape
    # IN half: each sample and channel has zero mean on its own.
    torch.testing.assert_close(out[:, :32].mean(dim=(2, 3)), torch.zeros(4, 32), atol=1e-5, rtol=0)
    # BN half: zero mean over the batch, not per sample.
    torch.testing.assert_close(out[:, 32:].mean(dim=(0, 2, 3)), torch.zeros(32), atol=1e-5, rtol=0)


def test_ibn_with_odd_channels_puts_the_extra_channel_in_bn():
    layer = IBN(5)
    assert (layer.IN.num_features, layer.BN.num_features) == (2, 3)
    assert layer(torch.randn(2, 5, 3, 3)).shape == (2, 5, 3, 3)


def test_se_layer_has_bias_free_fastreid_linears_and_rescales_channels():
    layer = SELayer(64, reduction=16)
    assert layer.fc[0].weight.shape == (4, 64) and layer.fc[0].bias is None
    assert layer.fc[2].weight.shape == (64, 4) and layer.fc[2].bias is None
    x = torch.rand(2, 64, 5, 3)
    out = layer(x)
    ratio = out / x
    # One weight in (0, 1) per sample and channel, shared by every position.
    assert ((ratio > 0) & (ratio < 1)).all()
    torch.testing.assert_close(ratio, ratio[..., :1, :1].expand_as(ratio))


def test_non_local_block_starts_as_identity_and_keeps_shape():
    block = NonLocalBlock(32, "BN").eval()
    assert block.g.weight.shape == (16, 32, 1, 1)
    assert block.W[0].weight.shape == (32, 16, 1, 1)
    x = torch.randn(2, 32, 6, 4)
    torch.testing.assert_close(block(x), x)


def test_non_local_block_learns_a_residual_once_w_norm_is_nonzero():
    block = NonLocalBlock(8, "BN", inter_channels=1)
    assert block.theta.weight.shape == (1, 8, 1, 1)  # FastReID's AGW checkpoint shape
    torch.nn.init.ones_(block.W[1].weight)
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    out = block.train()(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    out.sum().backward()
    assert block.theta.weight.grad is not None and block.theta.weight.grad.abs().sum() > 0


def test_split_attention_weights_sum_to_one_over_the_radix():
    layer = SplAtConv2d(16, 16, radix=2, groups=1).eval()
    assert layer.conv.weight.shape == (32, 8, 3, 3)  # groups * radix = 2
    logits = torch.randn(3, 32, 1, 1)
    weights = layer._split_softmax(logits).view(3, 2, 16)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3, 16))
    assert layer(torch.randn(3, 16, 8, 4)).shape == (3, 16, 8, 4)


def test_split_attention_strided_output_shape():
    layer = SplAtConv2d(8, 24, stride=2, radix=2)
    assert layer(torch.randn(2, 8, 8, 6)).shape == (2, 24, 4, 3)
