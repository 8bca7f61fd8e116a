"""FastAttr end to end on a tiny synthetic set: configs, training, evaluation, bad input."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.data.synthetic import generate_synthetic_dataset
from fastreid.engine import default_argument_parser
from fastreid.engine.cli import main, main_reporting_bad_input
from fastreid.utils.env import seed_all_rng
from projects.FastAttr.fastattr import AttrTrainer, add_attr_config
from projects.FastAttr.fastattr.datasets import AttrDataset, attribute_item

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")

# FastReID's own base config line that points at a file on its authors' machine.
FASTREID_PRETRAIN_PATH = "/export/home/lxy/.cache/torch/checkpoints/resnet50-19c8e357.pth"


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("attr"))
    generate_synthetic_dataset(
        root, num_ids=8, seed=0, height=32, width=16, num_distractors=2, num_junk=1
    )
    return root


def tiny_cfg(root: str, output_dir: str, *opts):
    cfg = get_cfg()
    add_attr_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIGS, "synthetic.yml"))
    cfg.merge_from_list(
        [
            "DATASETS.ROOT",
            root,
            "OUTPUT_DIR",
            output_dir,
            "INPUT.SIZE_TRAIN",
            [32, 16],
            "INPUT.SIZE_TEST",
            [32, 16],
            "SOLVER.IMS_PER_BATCH",
            8,
            "SOLVER.MAX_EPOCH",
            2,
            "SOLVER.STEPS",
            [1],
            "SOLVER.WARMUP_ITERS",
            0,
            "SOLVER.CHECKPOINT_PERIOD",
            2,
            "TEST.EVAL_PERIOD",
            2,
            "TEST.IMS_PER_BATCH",
            16,
            "DATALOADER.NUM_WORKERS",
            0,
            *opts,
        ]
    )
    return cfg


@pytest.fixture(autouse=True)
def _drop_added_log_handlers():
    """cli.main sets up the fastreid logger on this test's captured stdout; remove
    those handlers so later tests do not write to a closed stream."""
    logger = logging.getLogger("fastreid")
    before = list(logger.handlers)
    yield
    for handler in [h for h in logger.handlers if h not in before]:
        logger.removeHandler(handler)
        handler.close()


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.text += record.getMessage() + "\n"


@pytest.mark.parametrize("name", ["Base-attribute", "pa100", "market1501", "dukemtmc"])
def test_fastreid_configs_load_with_their_keys(name):
    cfg = get_cfg()
    add_attr_config(cfg)
    cfg.merge_from_file(os.path.join(CONFIGS, f"{name}.yml"))
    assert cfg.MODEL.META_ARCHITECTURE == "AttrBaseline" and cfg.MODEL.HEADS.NAME == "AttrHead"
    assert cfg.MODEL.LOSSES.BCE.WEIGHT_ENABLED and cfg.MODEL.LOSSES.BCE.SCALE == 1.0
    assert cfg.TEST.THRES == 0.5 and cfg.TEST.EVALUATOR == "AttrEvaluator"
    assert cfg.SOLVER.HEADS_LR_FACTOR == 10.0
    expected = {"Base-attribute": 26, "pa100": 26, "market1501": 27, "dukemtmc": 23}[name]
    assert cfg.MODEL.HEADS.NUM_CLASSES == expected


def test_fastreid_hard_coded_pretrain_path_is_an_override_not_a_crash(tmp_path):
    text = open(os.path.join(CONFIGS, "Base-attribute.yml")).read()
    text = text.replace('PRETRAIN_PATH: ""', f"PRETRAIN_PATH: {FASTREID_PRETRAIN_PATH}")
    (tmp_path / "fastreid_base.yml").write_text(text)
    cfg = get_cfg()
    add_attr_config(cfg)
    cfg.merge_from_file(str(tmp_path / "fastreid_base.yml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.DEPTH, cfg.MODEL.BACKBONE.FEAT_DIM = "18x", 512
    with pytest.raises(FileNotFoundError, match="MODEL.BACKBONE.PRETRAIN_PATH points to"):
        AttrTrainer.build_model(cfg)
    # The usual override on the command line: a local file.
    weights = str(tmp_path / "r18.pth")
    cfg.MODEL.BACKBONE.PRETRAIN = False
    source = AttrTrainer.build_model(cfg)
    torch.save(source.backbone.state_dict(), weights)
    cfg.merge_from_list(["MODEL.BACKBONE.PRETRAIN", True, "MODEL.BACKBONE.PRETRAIN_PATH", weights])
    model = AttrTrainer.build_model(cfg)
    assert model.num_attributes == 26
    key = "backbone.conv1.weight"
    assert torch.equal(model.state_dict()[key], source.state_dict()[key])


def test_trains_evaluates_and_reloads(synthetic_root, tmp_path):
    out = str(tmp_path / "run")
    cfg = tiny_cfg(synthetic_root, out, "MODEL.HEADS.NUM_CLASSES", 27)
    seed_all_rng(0)
    warnings = _Capture()
    logging.getLogger("fastreid").addHandler(warnings)  # it does not propagate to caplog
    try:
        trainer = AttrTrainer(cfg)
    finally:
        logging.getLogger("fastreid").removeHandler(warnings)
    # NUM_CLASSES 27 (FastReID's Market count) is replaced by the data's 30, and said so.
    assert "MODEL.HEADS.NUM_CLASSES=27 but" in warnings.text
    assert trainer.cfg.MODEL.HEADS.NUM_CLASSES == 30
    model = trainer.model
    items = trainer.data_loader.dataset.img_items
    expected = torch.tensor([it[3]["targets"] for it in items]).mean(0)
    torch.testing.assert_close(model.positive_ratios, expected)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    assert results["metric"] == results["mA"] and 0 <= results["mA"] <= 100
    assert {"Accu", "Prec", "Recall", "F1"} <= set(results)
    assert os.path.exists(os.path.join(out, "attribute_recall_SyntheticAttr.png"))
    assert len(trainer.storage.history("loss_bce").values()) == trainer.max_iter

    # --eval-only on the saved weights gives the same numbers.
    args = default_argument_parser().parse_args(
        [
            "--config-file",
            os.path.join(CONFIGS, "synthetic.yml"),
            "--eval-only",
            "DATASETS.ROOT",
            synthetic_root,
            "OUTPUT_DIR",
            str(tmp_path / "eval"),
            "INPUT.SIZE_TEST",
            "[32, 16]",
            "DATALOADER.NUM_WORKERS",
            "0",
            "MODEL.WEIGHTS",
            os.path.join(out, "model_final.pth"),
        ]
    )
    again = main(args, AttrTrainer)
    for key in ("mA", "Accu", "F1"):
        assert again[key] == pytest.approx(results[key], abs=1e-6)


def test_datasets_with_different_attributes_are_not_combined(synthetic_root, tmp_path, capsys):
    from fastreid.data.datasets import DATASET_REGISTRY

    @DATASET_REGISTRY.register()
    class AttrTestOtherNames(AttrDataset):
        def __init__(self, root="", combineall=False, verbose=True):
            items = [attribute_item("x.jpg", [1.0, 0.0])]
            super().__init__(["hat", "umbrella"], items, items, verbose=verbose)

    args = default_argument_parser().parse_args(
        [
            "--config-file",
            os.path.join(CONFIGS, "synthetic.yml"),
            "DATASETS.ROOT",
            synthetic_root,
            "OUTPUT_DIR",
            str(tmp_path),
            "DATASETS.NAMES",
            '("SyntheticAttr", "AttrTestOtherNames")',
        ]
    )
    with pytest.raises(SystemExit) as exit_info:
        main_reporting_bad_input(args, AttrTrainer)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: DATASETS.NAMES combines SyntheticAttr") and "umbrella" in err
