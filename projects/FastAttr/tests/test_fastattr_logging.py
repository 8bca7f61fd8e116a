"""FastAttr's messages (its per-attribute table) reach the run's console and log.txt, as the
core's do."""

from __future__ import annotations

import logging
import os

from fastreid.data.synthetic import generate_synthetic_dataset
from fastreid.engine import default_argument_parser
from fastreid.engine.cli import main

from ..fastattr import AttrTrainer
from ..fastattr import evaluation as attr_evaluation

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def test_per_attribute_table_is_in_log_txt(tmp_path, capsys):
    root = str(tmp_path / "datasets")
    generate_synthetic_dataset(root, num_ids=8, seed=0, height=32, width=16)
    out = tmp_path / "run"
    args = default_argument_parser().parse_args(
        ["--config-file", os.path.join(CONFIGS, "synthetic.yml"), "DATASETS.ROOT", root,
         "OUTPUT_DIR", str(out), "INPUT.SIZE_TRAIN", "[32, 16]", "INPUT.SIZE_TEST", "[32, 16]",
         "SOLVER.IMS_PER_BATCH", "8", "SOLVER.MAX_EPOCH", "1", "SOLVER.WARMUP_ITERS", "0",
         "SOLVER.STEPS", "[1]", "TEST.EVAL_PERIOD", "1", "TEST.IMS_PER_BATCH", "16",
         "DATALOADER.NUM_WORKERS", "0", "MODEL.BACKBONE.DEPTH", "18x",
         "MODEL.BACKBONE.FEAT_DIM", "512"]
    )  # fmt: skip
    fastreid_logger = logging.getLogger("fastreid")
    before = list(fastreid_logger.handlers)
    try:
        results = main(args, AttrTrainer)
    finally:
        for handler in [h for h in fastreid_logger.handlers if h not in before]:
            fastreid_logger.removeHandler(handler)
            handler.close()
    log = (out / "log.txt").read_text()
    table_line = next(line for line in log.splitlines() if "Per-attribute results of" in line)
    assert attr_evaluation.logger.name in table_line  # the project's own logger
    assert "SyntheticAttr" in table_line
    # The table itself: one row per attribute, whose mean accuracies average to the mA.
    lines = log[log.index(table_line) :].splitlines()[1:]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[0] == "attribute" and header[-1] == "mean_accuracy"
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    assert len(rows) == len(set(r[0] for r in rows)) > 1
    mean_accuracy = sum(float(r[-1]) for r in rows) / len(rows)
    assert abs(mean_accuracy - results["mA"]) < 0.01
    assert "Per-attribute results of" in capsys.readouterr().out  # and on the console
