"""LayerFreeze and PreciseBN inside a short real training (synthetic data, R18, CPU)."""

from __future__ import annotations

import copy

import torch

from fastreid.engine import CallbackHook, DefaultTrainer, hooks
from fastreid.utils.env import seed_all_rng
from fastreid.utils.precision_bn import bn_statistics_pass

from .conftest import tiny_config

FREEZE_ITERS = 2


class _Observed(DefaultTrainer):
    """The default hooks, with observers around PreciseBN: the model just before it runs,
    the batches it draws, and the BN statistics it leaves."""

    def build_hooks(self):
        result = super().build_hooks()
        self.seen = {"bn_batches": []}
        (index,) = [i for i, h in enumerate(result) if isinstance(h, hooks.PreciseBN)]
        precise = result[index]
        make_loader = precise.data_loader_fn

        def recording_loader():
            for batch in make_loader():
                self.seen["bn_batches"].append(batch)
                yield batch

        precise.data_loader_fn = recording_loader

        def before(trainer):
            self.seen["before_bn"] = copy.deepcopy(trainer.model)
            self.seen["stats_before_bn"] = copy.deepcopy(trainer.model.state_dict())

        def after(trainer):
            self.seen["after_bn"] = copy.deepcopy(trainer.model.state_dict())

        result[index:index] = [CallbackHook(after_epoch=before)]
        result[index + 2 : index + 2] = [CallbackHook(after_epoch=after)]
        return result


def test_layer_freeze_and_precise_bn_in_a_short_training(synthetic_root, tmp_path):
    cfg = tiny_config(
        synthetic_root,
        str(tmp_path),
        **{
            "MODEL.FREEZE_LAYERS": ["backbone"],
            "SOLVER.FREEZE_ITERS": FREEZE_ITERS,
            "TEST.PRECISE_BN.ENABLED": True,
            "TEST.PRECISE_BN.DATASET": "SyntheticReID",
            "TEST.PRECISE_BN.NUM_ITER": 2,
            "SOLVER.MAX_EPOCH": 1,
            "TEST.EVAL_PERIOD": 1,
        },
    )
    seed_all_rng(0)
    trainer = _Observed(cfg)
    model = trainer.model

    def snapshot(prefix):
        return {
            k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(prefix)
        }

    start = {"backbone": snapshot("backbone."), "heads": snapshot("heads.")}
    steps = []
    trainer.register_hooks(
        [
            CallbackHook(
                after_step=lambda t: steps.append(
                    (t.iter, snapshot("backbone."), snapshot("heads."))
                )
            )
        ]
    )
    trainer.train()
    assert len(steps) == trainer.iters_per_epoch == 3

    # Frozen for FREEZE_ITERS iterations: weights and BN statistics of the backbone stay put
    # while the head trains; then the backbone trains too.
    for iteration, backbone, heads in steps:
        if iteration < FREEZE_ITERS:
            for key, value in start["backbone"].items():
                assert torch.equal(backbone[key], value), (iteration, key)
        else:
            weights = [k for k in backbone if k.endswith("weight") and "bn" not in k]
            assert any(not torch.equal(backbone[k], start["backbone"][k]) for k in weights)
            stats = [k for k in backbone if k.endswith("running_mean")]
            assert any(not torch.equal(backbone[k], start["backbone"][k]) for k in stats)
        assert any(not torch.equal(heads[k], start["heads"][k]) for k in heads if "weight" in k)

    # Precise BN replaced the running statistics by the plain average of the exact batch
    # statistics over the NUM_ITER batches it drew. The stem BN's input depends on the
    # stem conv only, so it is recomputed here independently from those batches.
    batches = trainer.seen["bn_batches"]
    assert len(batches) == cfg.TEST.PRECISE_BN.NUM_ITER
    reference_model = trainer.seen["before_bn"].train()
    bn = reference_model.backbone.bn1
    inputs = []
    handle = bn.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach()))
    with torch.no_grad(), bn_statistics_pass():
        for batch in batches:
            reference_model(batch)
    handle.remove()
    assert len(inputs) == len(batches)
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in inputs])
    variances = torch.stack([x.transpose(0, 1).flatten(1).var(dim=1) for x in inputs])
    after = trainer.seen["after_bn"]
    torch.testing.assert_close(after["backbone.bn1.running_mean"], means.mean(0))
    torch.testing.assert_close(after["backbone.bn1.running_var"], variances.mean(0))
    before = trainer.seen["stats_before_bn"]
    assert not torch.allclose(before["backbone.bn1.running_mean"], means.mean(0))
    assert not torch.allclose(before["backbone.bn1.running_var"], variances.mean(0))
