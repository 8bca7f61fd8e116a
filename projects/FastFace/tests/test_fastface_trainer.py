"""FaceTrainer end to end on a tiny synthetic set: PartialFC steps, per-rank shards, exact
resume, pair-set evaluation, and the identity-count check."""

from __future__ import annotations

import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.utils.checkpoint import CheckpointError
from fastreid.utils.env import seed_all_rng
from projects.FastFace.fastface import add_face_config
from projects.FastFace.fastface.synthetic import generate_synthetic_faces
from projects.FastFace.fastface.trainer import FaceTrainer

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "synthetic_r18_cpu.yml")


@pytest.fixture(scope="module")
def face_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    generate_synthetic_faces(
        str(root / "SyntheticFace"), num_train_ids=6, images_per_id=4, num_val_ids=6, num_pairs=20
    )
    return root


def make_cfg(root, out, *opts):
    cfg = add_face_config(get_cfg())
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list(
        [
            "DATASETS.ROOT", str(root),
            "DATASETS.REC_PATH", str(root / "SyntheticFace" / "train.rec"),
            "MODEL.BACKBONE.DEPTH", "18x-w4",
            "MODEL.BACKBONE.FEAT_DIM", "512",
            "MODEL.HEADS.EMBEDDING_DIM", "16",
            "SOLVER.IMS_PER_BATCH", "8",
            "SOLVER.MAX_EPOCH", "2",
            "SOLVER.STEPS", "[1]",
            "SOLVER.WARMUP_ITERS", "0",
            "SOLVER.CHECKPOINT_PERIOD", "1",
            "TEST.EVAL_PERIOD", "2",
            "DATALOADER.NUM_WORKERS", "0",
            "OUTPUT_DIR", str(out),
            *opts,
        ]
    )  # fmt: skip
    return cfg


def test_train_resume_and_evaluate(face_root, tmp_path):
    torch.set_num_threads(1)
    seed_all_rng(0)  # what default_setup does at start-up
    straight = FaceTrainer(make_cfg(face_root, tmp_path / "a"))
    assert straight.pfc.num_classes == 6 and straight.pfc.num_sample == 3
    results = straight.train()
    assert 0.0 <= results["Accuracy"] <= 100.0 and "TAR@FAR=0.001" in results
    assert os.path.isfile(tmp_path / "a" / "model_0000_rank0.pth")
    assert os.path.isfile(tmp_path / "a" / "model_final_rank0.pth")
    assert os.path.isfile(tmp_path / "a" / "visualization" / "SyntheticFaceVal_roc.png")
    # The centres' schedule dropped at epoch 1, like the backbone's.
    pfc_opt = straight.extra_optimizers["pfc"].optimizer
    assert pfc_opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.1)

    # --eval-only (FaceTrainer.evaluate_weights) on the saved weights: the same figures,
    # from a model built without the PartialFC centres.
    weights = str(tmp_path / "a" / "model_final.pth")
    again = FaceTrainer.evaluate_weights(
        make_cfg(face_root, tmp_path / "eval", "MODEL.WEIGHTS", weights)
    )
    for key in ("Accuracy", "TAR@FAR=0.001"):
        assert again[key] == pytest.approx(results[key], abs=1e-6)

    # Resume from epoch 0's checkpoint: the same centres, momentum and model as straight on.
    out_b = tmp_path / "b"
    os.makedirs(out_b)
    for name in ("model_0000.pth", "model_0000_rank0.pth"):
        os.link(tmp_path / "a" / name, out_b / name)
    (out_b / "last_checkpoint").write_text("model_0000.pth")
    seed_all_rng(0)
    resumed = FaceTrainer(make_cfg(face_root, out_b))
    resumed.resume_or_load(resume=True)
    assert resumed.start_epoch == 1
    resumed.train()
    assert torch.equal(resumed.pfc.weight, straight.pfc.weight)
    assert torch.equal(resumed.pfc.weight_mom, straight.pfc.weight_mom)
    for (k, a), (_, b) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items()
    ):
        assert torch.equal(a, b), k


def test_missing_shard_on_resume_names_it(face_root, tmp_path):
    out = tmp_path / "c"
    trainer = FaceTrainer(make_cfg(face_root, out, "SOLVER.MAX_EPOCH", "1"))
    trainer.checkpointer.save("model_0000", epoch=0)
    shard = torch.load(out / "model_0000_rank0.pth", weights_only=True)
    assert set(shard) == {"pfc", "optimizer_pfc", "scheduler_pfc", "world_size"}
    os.remove(out / "model_0000_rank0.pth")
    with pytest.raises(CheckpointError, match="model_0000_rank0.pth"):
        FaceTrainer(make_cfg(face_root, out, "SOLVER.MAX_EPOCH", "1")).resume_or_load(resume=True)


def test_identity_count_must_match_num_classes(face_root, tmp_path):
    with pytest.raises(
        ValueError, match="NUM_CLASSES is 9 but the training data .* has 6 identities"
    ):
        FaceTrainer(make_cfg(face_root, tmp_path, "MODEL.HEADS.NUM_CLASSES", "9"))


def test_plain_cosface_head_without_pfc_trains(face_root, tmp_path):
    cfg = make_cfg(face_root, tmp_path, "MODEL.HEADS.PFC.ENABLED", "False", "SOLVER.MAX_EPOCH", "1")
    trainer = FaceTrainer(cfg)
    assert trainer.pfc is None and trainer.model.heads.weight.shape == (6, 16)
    trainer.train()
