"""FastReID's FastFace behaviours: add_face_cfg, REC_PATH under DATASETS.ROOT, SKIP_CORRUPT in
.rec training, the norm-5 clip of the PartialFC step, the max-clip fp16 scaler, and loading
FastReID's PartialFC shard files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fastreid.config import get_cfg
from fastreid.data.data_utils import CorruptImageError
from fastreid.utils.events import EventStorage
from projects.FastFace.fastface import add_face_cfg, add_face_config
from projects.FastFace.fastface.datasets import RecFaceDataset
from projects.FastFace.fastface.partial_fc import PartialFC, ShardFileError, load_fastreid_shard
from projects.FastFace.fastface.recordio import write_face_rec
from projects.FastFace.fastface.trainer import (
    FaceTrainer,
    MaxClipGradScaler,
    PFCStepTrainer,
    resolve_rec_path,
)


def _jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _face_cfg(*opts):
    cfg = add_face_cfg(get_cfg())
    cfg.merge_from_list(list(opts))
    return cfg


def test_add_face_cfg_is_fastreids_name_for_the_same_keys():
    assert add_face_cfg is add_face_config
    cfg = _face_cfg()
    assert cfg.DATASETS.REC_PATH == "" and cfg.MODEL.HEADS.PFC.CLIP_NORM == 5.0


def test_relative_rec_path_is_taken_under_datasets_root(tmp_path):
    cfg = _face_cfg("DATASETS.ROOT", str(tmp_path), "DATASETS.REC_PATH", "emore/train.rec")
    assert resolve_rec_path(cfg) == str(tmp_path / "emore" / "train.rec")
    cfg = _face_cfg("DATASETS.ROOT", str(tmp_path), "DATASETS.REC_PATH", "/abs/train.rec")
    assert resolve_rec_path(cfg) == "/abs/train.rec"
    # The trainer reads it there.
    write_face_rec(str(tmp_path / "train.rec"), [(0, _jpeg(10)), (1, _jpeg(20))])
    cfg = _face_cfg(
        "DATASETS.ROOT", str(tmp_path), "DATASETS.REC_PATH", "train.rec",
        "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0", "INPUT.SIZE_TRAIN", "[16, 16]",
    )  # fmt: skip
    assert len(FaceTrainer.build_train_loader(cfg).dataset) == 2


def _rec_with_a_bad_record(tmp_path):
    rec = str(tmp_path / "train.rec")
    # Record 2 (class 0's second image) does not decode.
    write_face_rec(rec, [(0, _jpeg(10)), (0, b"not an image"), (1, _jpeg(30)), (1, _jpeg(40))])
    return rec


def test_rec_training_honours_skip_corrupt(tmp_path):
    rec = _rec_with_a_bad_record(tmp_path)
    opts = [
        "DATASETS.REC_PATH", rec, "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0",
        "INPUT.SIZE_TRAIN", "[16, 16]",
    ]  # fmt: skip
    strict = FaceTrainer.build_train_loader(_face_cfg(*opts)).dataset
    with pytest.raises(CorruptImageError, match=r"train.rec record 2.*DATALOADER.SKIP_CORRUPT"):
        strict[1]
    skipping = FaceTrainer.build_train_loader(
        _face_cfg(*opts, "DATALOADER.SKIP_CORRUPT", "True")
    ).dataset
    samples = [skipping[i] for i in range(len(skipping))]
    assert skipping.skipped == 1
    assert [s["img_paths"].endswith("#2") for s in samples] == [False] * 4
    assert samples[1]["images"].shape == samples[0]["images"].shape
    # A record that is present and readable is unchanged.
    assert samples[0]["targets"] == 0 and samples[3]["targets"] == 1


def test_skip_corrupt_gives_up_on_a_rec_with_no_readable_record(tmp_path):
    rec = str(tmp_path / "bad.rec")
    write_face_rec(rec, [(0, b"x"), (1, b"y")])
    with pytest.raises(CorruptImageError, match="replacement records"):
        RecFaceDataset(rec, skip_corrupt=True)[0]


class _Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)

    def forward(self, batch):
        return {"features": self.fc(batch["images"]), "targets": batch["targets"]}


def _pfc_step(clip_norm, seed=0):
    torch.manual_seed(seed)
    model = _Embed()
    pfc = PartialFC(5, 4, sample_rate=1.0, scale=16.0, margin=0.2, seed=0)
    pfc_opt = pfc.build_optimizer(lr=0.0, momentum=0.0, weight_decay=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    batch = {"images": torch.randn(8, 6) * 50, "targets": torch.arange(8) % 5}
    trainer = PFCStepTrainer(model, [batch], opt, pfc, pfc_opt, clip_norm=clip_norm)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    with EventStorage(0) as trainer.storage:
        trainer.run_step()
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return before - after  # lr 1: the gradient actually applied


def test_pfc_step_clips_the_model_gradient_at_the_given_norm():
    free = _pfc_step(clip_norm=0.0)
    assert free.norm() > 0.05  # the test needs a gradient larger than the clip
    clipped = _pfc_step(clip_norm=0.05)
    assert clipped.norm().item() == pytest.approx(0.05, rel=1e-4)
    torch.testing.assert_close(clipped, free * (0.05 / free.norm()), rtol=1e-4, atol=1e-7)
    big = _pfc_step(clip_norm=1e6)  # a norm above the gradient's leaves it unchanged
    torch.testing.assert_close(big, free)


def test_max_clip_grad_scaler_never_grows_past_its_cap():
    param = nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([param], lr=0.0)
    scaler = MaxClipGradScaler("cpu", init_scale=4.0, max_scale=16.0, growth_interval=1)
    plain = torch.amp.GradScaler("cpu", init_scale=4.0, growth_interval=1)
    seen, seen_plain = [], []
    for grad in (1.0, 1.0, 1.0, 1.0, float("inf"), 1.0):
        for s, out in ((scaler, seen), (plain, seen_plain)):
            opt.zero_grad()
            s.scale(param.sum() * grad).backward()
            s.step(opt)
            s.update()
            out.append(s.get_scale())
    assert seen == [8.0, 16.0, 16.0, 16.0, 8.0, 16.0]
    assert seen_plain == [8.0, 16.0, 32.0, 64.0, 32.0, 64.0]  # what the cap changes


def _fastreid_shard(path, weight, momentum):
    # FastReID's PfcCheckpointer layout: {"model": {"weight", "momentum"}, checkpointables...}
    torch.save(
        {"model": {"weight": weight, "momentum": momentum}, "optimizer": {}, "epoch": 3}, path
    )


def test_fastreid_partial_fc_shards_load(tmp_path):
    weight, momentum = torch.randn(5, 4), torch.randn(5, 4)
    _fastreid_shard(tmp_path / "softmax_weight_00.pth", weight, momentum)
    (tmp_path / "last_weight_00").write_text("softmax_weight_00.pth")
    for path in (str(tmp_path), str(tmp_path / "softmax_weight_{rank}.pth")):
        pfc = PartialFC(5, 4, rank=0, world_size=1)
        assert load_fastreid_shard(pfc, path).endswith("softmax_weight_00.pth")
        torch.testing.assert_close(pfc.weight, weight)
        torch.testing.assert_close(pfc.weight_mom, momentum)
    # Rank 1 of 2 holds classes 3..4: its own file, its own shape.
    _fastreid_shard(tmp_path / "softmax_weight_01.pth", weight[3:], momentum[3:])
    pfc1 = PartialFC(5, 4, rank=1, world_size=2)
    load_fastreid_shard(pfc1, str(tmp_path / "softmax_weight_{rank}.pth"))
    torch.testing.assert_close(pfc1.weight, weight[3:])
    # A shard of another class count or process count is one named error.
    with pytest.raises(ShardFileError, match=r"softmax_weight_00.pth holds weight of shape"):
        load_fastreid_shard(
            PartialFC(5, 4, rank=0, world_size=2), str(tmp_path / "softmax_weight_{rank}.pth")
        )
    with pytest.raises(ShardFileError, match="last_weight_01"):
        load_fastreid_shard(PartialFC(5, 4, rank=1, world_size=2), str(tmp_path))
    (tmp_path / "junk.pth").write_bytes(b"\x80\x04junk")
    with pytest.raises(ShardFileError, match="junk.pth"):
        load_fastreid_shard(PartialFC(5, 4), str(tmp_path / "junk.pth"))


def test_trainer_starts_the_centres_from_pfc_weights(tmp_path):
    weight = torch.randn(5, 4)
    _fastreid_shard(tmp_path / "softmax_weight_00.pth", weight, torch.zeros(5, 4))
    cfg = _face_cfg(
        "MODEL.DEVICE", "cpu", "MODEL.HEADS.NUM_CLASSES", "5", "MODEL.HEADS.EMBEDDING_DIM", "4",
        "MODEL.HEADS.PFC.ENABLED", "True", "SOLVER.OPT", "SGD",
        "MODEL.HEADS.PFC.WEIGHTS", str(tmp_path / "softmax_weight_{rank}.pth"),
    )  # fmt: skip
    extra = FaceTrainer.build_extra_optimizers(cfg, nn.Linear(1, 1), iters_per_epoch=1)
    torch.testing.assert_close(extra["pfc"].module.weight, weight)
