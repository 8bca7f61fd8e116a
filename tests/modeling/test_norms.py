"""The normalization factory used by backbones and heads."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastreid.modeling.layers.batch_norm import FrozenBatchNorm, GhostBatchNorm, get_norm


@pytest.mark.parametrize("name", ["BN", "syncBN", "GhostBN", "FrozenBN", "GN", "IN"])
def test_every_norm_keeps_the_shape(name):
    x = torch.randn(4, 64, 3, 2)
    assert get_norm(name, 64)(x).shape == x.shape


def test_empty_name_is_identity():
    x = torch.randn(2, 8, 2, 2)
    assert torch.equal(get_norm("", 8)(x), x)


def test_unknown_norm_lists_the_choices_and_the_keys():
    with pytest.raises(KeyError, match=r"BatchNorm.*BN, syncBN.*MODEL\.BACKBONE\.NORM"):
        get_norm("BatchNorm", 8)


def test_frozen_bias_does_not_train_and_init_values_apply():
    norm = get_norm("BN", 8, bias_freeze=True, weight_init=0.5)
    assert not norm.bias.requires_grad and norm.weight.requires_grad
    assert torch.allclose(norm.weight, torch.full((8,), 0.5))


def test_sync_bn_outside_distributed_equals_plain_bn():
    torch.manual_seed(0)
    x = torch.randn(6, 4, 3, 3)
    sync, plain = get_norm("syncBN", 4), nn.BatchNorm2d(4)
    assert torch.allclose(sync(x), plain(x), atol=1e-6)
    assert torch.allclose(sync.running_mean, plain.running_mean)


def test_ghost_bn_normalises_each_virtual_batch_on_its_own():
    # Virtual batch k holds samples k, k + num_splits, ... (a P x K batch keeps its ids
    # spread over the virtual batches).
    torch.manual_seed(0)
    x = torch.randn(8, 3, 2, 2)
    x[1::2] = x[1::2] * 5 + 3  # the second virtual batch has other statistics
    out = GhostBatchNorm(3, num_splits=2)(x)
    for k in range(2):
        expected = F.batch_norm(x[k::2], None, None, training=True)
        assert torch.allclose(out[k::2], expected, atol=1e-5)


def test_frozen_bn_equals_an_eval_mode_bn_with_the_same_statistics():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(5).eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.5, 0.5)
    frozen = FrozenBatchNorm(5)
    frozen.load_state_dict(bn.state_dict())  # num_batches_tracked is dropped
    x = torch.randn(2, 5, 3, 3)
    assert torch.allclose(frozen(x), bn(x), atol=1e-6)
    assert not list(frozen.parameters())
