"""FastCls end to end on a tiny Fashion-MNIST: train, idx2class.json, eval-only, predict.py."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from fastreid.data.synthetic.fashion_mnist import write_fashion_mnist_like as make_fashion_mnist
from fastreid.engine import default_argument_parser
from fastreid.engine.cli import main
from projects.FastCls import predict
from projects.FastCls.fastcls import FASHION_MNIST_CLASSES, ClsTrainer, read_idx

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "fashion_mnist_small_resnet.yml")


def _args(tmp_path, output, *extra):
    return default_argument_parser().parse_args(
        [
            "--config-file",
            CONFIG,
            *extra,
            "DATASETS.ROOT",
            str(tmp_path / "data"),
            "OUTPUT_DIR",
            str(output),
            "SOLVER.MAX_EPOCH",
            "1",
            "SOLVER.IMS_PER_BATCH",
            "20",
            "SOLVER.WARMUP_ITERS",
            "0",
            "SOLVER.AMP.ENABLED",
            "False",
            "DATALOADER.NUM_WORKERS",
            "0",
            "TEST.IMS_PER_BATCH",
            "16",
        ]
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("fastcls")
    make_fashion_mnist(str(tmp_path / "data" / "fashion-mnist"), per_class=6, test_per_class=2)
    results = main(_args(tmp_path, tmp_path / "run"), trainer_cls=ClsTrainer)
    return tmp_path, results


def test_training_saves_idx2class_next_to_checkpoints(trained):
    tmp_path, results = trained
    run = tmp_path / "run"
    assert (run / "model_final.pth").is_file()
    mapping = json.loads((run / "idx2class.json").read_text())
    assert mapping == {str(i): name for i, name in enumerate(FASHION_MNIST_CLASSES)}
    assert set(results) >= {"Top-1", "Top-5", "metric"}
    assert (run / "FashionMNIST_confusion_matrix.png").is_file()


def test_eval_only_reads_idx2class_from_the_weights_folder(trained):
    tmp_path, results = trained
    weights = tmp_path / "run" / "model_final.pth"
    again = main(
        _args(tmp_path, tmp_path / "eval", "--eval-only", "MODEL.WEIGHTS", str(weights)),
        trainer_cls=ClsTrainer,
    )
    assert again["Top-1"] == pytest.approx(results["Top-1"])


def test_eval_only_without_idx2class_is_one_clear_error(trained, tmp_path):
    run_dir = trained[0] / "run"
    lonely = tmp_path / "model.pth"
    lonely.write_bytes((run_dir / "model_final.pth").read_bytes())
    with pytest.raises(FileNotFoundError, match="idx2class.json"):
        main(
            _args(trained[0], tmp_path / "eval", "--eval-only", "MODEL.WEIGHTS", str(lonely)),
            trainer_cls=ClsTrainer,
        )


def test_predict_prints_top_k_class_names(trained, tmp_path, capsys):
    data = trained[0] / "data" / "fashion-mnist"
    images = read_idx(str(data / "t10k-images-idx3-ubyte"))
    folder = tmp_path / "images" / "nested"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(images[i]).save(folder / f"{i}.png")
    assert (
        predict.main(
            ["--model", str(trained[0] / "run"), "--input", str(tmp_path / "images"), "--topk", "2"]
        )
        == 0
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if "\t" in line]
    assert len(lines) == 3
    for line in lines:
        path, ranked = line.split("\t")
        assert path.endswith(".png") and "1. " in ranked and "2. " in ranked
        names = [part.split(". ", 1)[1].rsplit(" (", 1)[0] for part in ranked.split("  ")]
        assert all(n in FASHION_MNIST_CLASSES for n in names)
        probs = [float(part.rsplit("(", 1)[1].rstrip("%)")) for part in ranked.split("  ")]
        assert probs[0] >= probs[1] and 0 < sum(probs) <= 100.001
    assert np.isfinite(probs).all()


def test_predict_on_a_missing_input_is_one_clear_error(trained):
    with pytest.raises(FileNotFoundError, match="neither an image file nor a folder"):
        predict.main(["--model", str(trained[0] / "run"), "--input", "/nonexistent/x.png"])


def test_the_test_loader_takes_the_class_order_training_wrote_not_class_state(tmp_path):
    # A folder dataset whose test split lacks a class: its own order would shift the labels.
    from fastreid.config import get_cfg

    from .fastcls_fixtures import make_image_folder

    make_image_folder(
        str(tmp_path / "data" / "cls_folder"),
        {"train": {"ants": 1, "bees": 1, "wasps": 1}, "val": {"bees": 1, "wasps": 1}},
    )
    cfg = get_cfg()
    ClsTrainer.add_config(cfg)
    cfg.DATASETS.ROOT = str(tmp_path / "data")
    cfg.DATASETS.NAMES = ("ClsImageFolder",)
    cfg.OUTPUT_DIR = str(tmp_path / "run")
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"
    ClsTrainer.build_train_loader(cfg)
    assert json.loads((tmp_path / "run" / "idx2class.json").read_text()) == {
        "0": "ants", "1": "bees", "2": "wasps"
    }  # fmt: skip
    assert "class_names" not in vars(ClsTrainer)  # nothing left on the class
    loader, num_query = ClsTrainer.build_test_loader(cfg, "ClsImageFolder")
    targets = sorted(int(t) for batch in loader for t in batch["targets"])
    assert targets == [1, 2] and num_query == 2  # bees, wasps in the training order


def test_results_carry_fastreids_acc1_beside_top1(trained):
    results = trained[1]
    assert "Acc@1" in results and results["Acc@1"] == results["Top-1"]
    keys = list(results)
    assert keys.index("Acc@1") < keys.index("metric")


def test_fastreid_names_are_the_same_classes():
    from projects.FastClas.fastclas import ClasDataset as PkgDataset
    from projects.FastClas.fastclas import ClasTrainer as PkgTrainer
    from projects.FastCls.fastcls import ClasDataset, ClasTrainer, ClsDataset

    assert ClasTrainer is ClsTrainer and PkgTrainer is ClsTrainer
    assert ClasDataset is ClsDataset and PkgDataset is ClsDataset


def test_predict_honours_skip_corrupt_from_opts(trained, tmp_path, capsys):
    from fastreid.data.data_utils import CorruptImageError

    data = trained[0] / "data" / "fashion-mnist"
    images = read_idx(str(data / "t10k-images-idx3-ubyte"))
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(images[i]).save(folder / f"{i}.png")
    (folder / "1.png").write_bytes(b"not a png")  # the middle one cannot be read
    argv = ["--model", str(trained[0] / "run"), "--input", str(folder)]
    with pytest.raises(CorruptImageError, match=r"1\.png.*DATALOADER.SKIP_CORRUPT"):
        predict.main(argv)
    capsys.readouterr()
    assert predict.main([*argv, "--opts", "DATALOADER.SKIP_CORRUPT", "True"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if "\t" in line]
    assert [os.path.basename(line.split("\t")[0]) for line in lines] == ["0.png", "2.png"]
    assert "skipped unreadable image" in captured.err and "1.png" in captured.err
    assert "1 of 3 images were unreadable" in captured.err


def test_num_classes_that_does_not_match_the_data_stops_before_training(trained, tmp_path):
    from fastreid.utils.errors import BadInputError

    out = tmp_path / "wrong"
    with pytest.raises(BadInputError, match=r"NUM_CLASSES=3 but .* has 10 classes"):
        main(_args(trained[0], out, "MODEL.HEADS.NUM_CLASSES", "3"), trainer_cls=ClsTrainer)
    assert not any(name.endswith(".pth") for name in os.listdir(out))
