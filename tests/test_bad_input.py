"""Bad input gets one clear error that names the fix: never a hang, never only a traceback from
deep inside torch/yacs/PIL, never a half-written file.

Most cases call the library; the command-line cases run the tools in a subprocess because
the one-line message and the exit code are what is being checked there.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastreid.config import ConfigKeyError, ConfigValueError, get_cfg
from fastreid.data import CorruptImageError, build_reid_train_loader
from fastreid.data.common import CommDataset
from fastreid.data.datasets.bases import DatasetNotFoundError
from fastreid.data.synthetic import generate_synthetic_dataset
from fastreid.engine.setup import default_setup
from fastreid.export.dependencies import MissingDependencyError, require
from fastreid.modeling import build_model
from fastreid.utils.checkpoint import Checkpointer
from fastreid.utils.env import resolve_device
from fastreid.utils.errors import describe_error, exit_on_bad_input
from fastreid.utils.file_io import ensure_dir

pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities:DeprecationWarning"
)

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "configs" / "Synthetic" / "bagtricks_R18.yml")
SMALL = [
    "SOLVER.MAX_EPOCH", "1", "INPUT.SIZE_TRAIN", "[64,32]", "INPUT.SIZE_TEST", "[64,32]",
    "SOLVER.IMS_PER_BATCH", "16", "DATALOADER.NUM_WORKERS", "0",
]  # fmt: skip


def _cfg(*opts: str):
    cfg = get_cfg()
    cfg.merge_from_file(RECIPE)
    cfg.merge_from_list(SMALL + list(opts))
    return cfg


# Generous: these tests catch hangs, and a busy 2-core machine needs a minute to start torch twice.
def _run(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "FASTREID_DEBUG"}
    full_env.update(PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    generate_synthetic_dataset(str(root), num_ids=8, height=32, width=16)
    return root


# -- configuration ---------------------------------------------------------------------------
def test_misspelled_yaml_key_names_the_closest_valid_key(tmp_path):
    path = tmp_path / "typo.yml"
    path.write_text(f"_BASE_: {RECIPE}\nMODEL:\n  BACKBONE:\n    DEPHT: 18x\n")
    with pytest.raises(ConfigKeyError, match=r"DEPHT.*typo\.yml.*MODEL\.BACKBONE\.DEPTH"):
        get_cfg().merge_from_file(str(path))


def test_override_of_the_wrong_type_names_the_key_and_the_expected_type():
    with pytest.raises(ConfigValueError, match=r"'SOLVER\.BASE_LR'.*expects a number.*'abc'"):
        get_cfg().merge_from_list(["SOLVER.BASE_LR", "abc"])
    with pytest.raises(ConfigValueError, match=r"'SOLVER\.MAX_EPOCH'.*expects an integer.*1\.5"):
        get_cfg().merge_from_list(["SOLVER.MAX_EPOCH", "1.5"])


def test_yaml_value_of_the_wrong_type_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "bad_type.yml"
    path.write_text("SOLVER:\n  IMS_PER_BATCH: lots\n")
    with pytest.raises(ConfigValueError, match=r"'SOLVER\.IMS_PER_BATCH'.*bad_type\.yml.*integer"):
        get_cfg().merge_from_file(str(path))


def test_value_given_to_a_group_of_keys_names_one_of_its_keys():
    with pytest.raises(ConfigValueError, match=r"MODEL\.BACKBONE.*group.*MODEL\.BACKBONE\.NAME"):
        get_cfg().merge_from_list(["MODEL.BACKBONE", "resnet"])


# -- registries, datasets, sampler -------------------------------------------------------------
def test_misspelled_backbone_name_suggests_the_registered_one():
    cfg = _cfg("MODEL.BACKBONE.NAME", "build_resnet_bakbone")
    with pytest.raises(KeyError, match="Did you mean: build_resnet_backbone"):
        build_model(cfg)


def test_unknown_dataset_name_suggests_the_registered_one(synthetic_root):
    cfg = _cfg("DATASETS.NAMES", '("Market1502",)', "DATASETS.ROOT", str(synthetic_root))
    with pytest.raises(KeyError, match="Did you mean: Market1501"):
        build_reid_train_loader(cfg)


def test_missing_dataset_folder_says_where_to_put_it(tmp_path):
    cfg = _cfg("DATASETS.NAMES", '("Market1501",)', "DATASETS.ROOT", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"(?s)Market-1501.*FASTREID_DATASETS"):
        build_reid_train_loader(cfg)


def test_num_instance_bigger_than_the_batch_names_both_keys(synthetic_root):
    cfg = _cfg("DATALOADER.NUM_INSTANCE", "32", "DATASETS.ROOT", str(synthetic_root))
    with pytest.raises(ValueError, match=r"SOLVER\.IMS_PER_BATCH.*DATALOADER\.NUM_INSTANCE"):
        build_reid_train_loader(cfg)


# -- images ----------------------------------------------------------------------------------
def _truncated_training_items(synthetic_root: Path, tmp_path: Path):
    folder = synthetic_root / "SyntheticReID" / "bounding_box_train"
    items = []
    for i, source in enumerate(sorted(folder.glob("*.jpg"))[:3]):
        target = tmp_path / source.name
        data = source.read_bytes()
        target.write_bytes(data[:300] if i == 0 else data)  # the first one is truncated
        items.append((str(target), "synthetic_1", "synthetic_c1"))
    return items


def test_truncated_jpeg_error_names_the_file_and_the_skip_key(synthetic_root, tmp_path):
    items = _truncated_training_items(synthetic_root, tmp_path)
    with pytest.raises(CorruptImageError) as info:
        CommDataset(items)[0]
    assert items[0][0] in str(info.value)
    assert "DATALOADER.SKIP_CORRUPT True" in str(info.value)


def test_skip_corrupt_replaces_a_truncated_jpeg_with_a_warning(synthetic_root, tmp_path, caplog):
    items = _truncated_training_items(synthetic_root, tmp_path)
    with caplog.at_level(logging.WARNING, logger="fastreid.data.common"):
        sample = CommDataset(items, skip_corrupt=True)[0]
    assert sample["img_paths"] != items[0][0]
    assert items[0][0] in caplog.text


def test_corrupt_image_from_a_loader_worker_is_reported_without_the_worker_traceback():
    message = (
        "Caught CorruptImageError in DataLoader worker process 0.\nOriginal Traceback (most "
        'recent call last):\n  File "x.py", line 1, in f\nfastreid.data.data_utils.'
        "CorruptImageError: Cannot decode image a.jpg. Replace the file.\n"
    )
    assert (
        describe_error(CorruptImageError(message)) == "Cannot decode image a.jpg. Replace the file."
    )


# -- checkpoints -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def r18_model():
    return build_model(_cfg("MODEL.HEADS.NUM_CLASSES", "4"))


def test_missing_weights_file_names_the_path_and_model_weights(r18_model, tmp_path):
    missing = str(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError, match=rf"{missing}.*MODEL\.WEIGHTS"):
        Checkpointer(r18_model).load(missing)


def test_weights_file_that_is_text_says_it_is_not_a_checkpoint(r18_model, tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello\n")
    with pytest.raises(RuntimeError, match=rf"{text}.*not a PyTorch checkpoint"):
        Checkpointer(r18_model).load(str(text))


def test_r50_checkpoint_into_r18_says_it_is_another_architecture(r18_model, tmp_path):
    r50 = build_model(
        _cfg("MODEL.BACKBONE.DEPTH", "50x", "MODEL.BACKBONE.FEAT_DIM", "2048",
             "MODEL.HEADS.NUM_CLASSES", "4")
    )  # fmt: skip
    path = tmp_path / "r50.pth"
    torch.save({"model": r50.state_dict()}, path)
    with pytest.raises(ValueError, match=r"another architecture.*MODEL\.BACKBONE"):
        Checkpointer(r18_model).load(str(path))


# -- devices and output folders --------------------------------------------------------------
def test_cuda_device_without_a_gpu_falls_back_to_cpu_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="fastreid"):
        assert resolve_device("cuda") == torch.device("cpu")
    assert "MODEL.DEVICE cpu" in caplog.text
    with pytest.raises(ValueError, match=r"MODEL\.DEVICE 'gpu0' is not a device name"):
        resolve_device("gpu0")


def test_output_dir_under_a_file_names_output_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cfg = _cfg("OUTPUT_DIR", str(blocker / "run"))
    with pytest.raises(NotADirectoryError, match=rf"OUTPUT_DIR '{blocker / 'run'}'"):
        default_setup(cfg)


def test_output_dir_that_is_not_writable_names_the_folder(tmp_path, monkeypatch):
    # Tests may run as root, who can write anywhere; pretend the folder is read-only.
    folder = tmp_path / "read_only"
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(folder) else real_access(p, mode)
    )
    with pytest.raises(PermissionError, match=rf"OUTPUT_DIR '{folder}' is not writable"):
        ensure_dir(str(folder), what="OUTPUT_DIR")


def test_missing_optional_package_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"'onnxruntime'.*pip install"):
        require("onnxruntime", "ONNX Runtime inference")


# -- command lines ---------------------------------------------------------------------------
def test_bad_input_ends_with_one_error_line_and_exit_code_2(capsys, monkeypatch):
    monkeypatch.delenv("FASTREID_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        exit_on_bad_input(get_cfg().merge_from_list, ["SOLVER.BASE_LRR", "0.1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown config key 'SOLVER.BASE_LRR'")
    assert "Traceback" not in err and "FASTREID_DEBUG=1" in err


def test_fastreid_debug_keeps_the_traceback(monkeypatch):
    monkeypatch.setenv("FASTREID_DEBUG", "1")
    with pytest.raises(ConfigKeyError):
        exit_on_bad_input(get_cfg().merge_from_list, ["SOLVER.BASE_LRR", "0.1"])


def test_train_net_with_a_typo_prints_one_line_not_a_traceback(tmp_path):
    result = _run(
        "tools/train_net.py", "--config-file", RECIPE, *SMALL,
        "MODEL.BACKBONE.DEPHT", "18x", "OUTPUT_DIR", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: Unknown config key 'MODEL.BACKBONE.DEPHT'" in result.stderr
    assert "MODEL.BACKBONE.DEPTH" in result.stderr


def test_two_cpu_processes_with_bad_input_exit_with_code_2_instead_of_hanging(
    tmp_path, synthetic_root
):
    result = _run(
        "tools/train_net.py", "--config-file", RECIPE, "--num-gpus", "2", *SMALL,
        "MODEL.BACKBONE.NAME", "build_resnet_bakbone", "OUTPUT_DIR", str(tmp_path / "run"),
        env={"CUDA_VISIBLE_DEVICES": "", "FASTREID_DATASETS": str(synthetic_root)},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: No object named 'build_resnet_bakbone'" in result.stderr
    assert "build_resnet_backbone" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_with_a_missing_weights_file_writes_nothing(tmp_path):
    output = tmp_path / "onnx"
    missing = tmp_path / "missing.pth"
    result = _run(
        "tools/deploy/onnx_export.py", "--config-file", RECIPE, "--output", str(output),
        "--opts", "MODEL.WEIGHTS", str(missing),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"error: MODEL.WEIGHTS '{missing}' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()


def test_synthetic_generator_with_an_unusable_output_names_the_option(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = _run("-m", "fastreid.data.synthetic", "--output", str(blocker / "x"), "--num-ids", "4")
    assert result.returncode == 2, result.stderr
    assert "--output" in result.stderr and str(blocker / "x") in result.stderr
    assert "Traceback" not in result.stderr


def test_visualize_result_with_a_missing_features_file_says_how_to_write_one(tmp_path):
    missing = tmp_path / "features.npz"
    result = _run(
        "tools/visualize_result.py", "--features", str(missing), "--output", str(tmp_path / "v")
    )
    assert result.returncode == 2, result.stderr
    assert f"'{missing}' (--features) does not exist" in result.stderr
    assert "--save-features" in result.stderr


# -- every tool takes config overrides both ways ----------------------------------------------
def _load_tool(relative: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "tool_" + relative.replace("/", "_")[:-3], REPO / relative
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_TOOLS = {
    "tools/deploy/onnx_export.py": ["--config-file", RECIPE],
    "tools/deploy/torchscript_export.py": ["--config-file", RECIPE],
    "tools/deploy/caffe_export.py": ["--config-file", RECIPE],
    "tools/deploy/trt_export.py": ["--config-file", RECIPE],
    "tools/extract_features.py": ["--config-file", RECIPE, "--input", RECIPE, "--output", "x"],
    "tools/visualize_result.py": ["--config-file", RECIPE, "--output", "vis"],
}


@pytest.mark.parametrize("style", ["trailing", "--opts"])
@pytest.mark.parametrize("tool", sorted(_TOOLS))
def test_every_tool_applies_overrides_given_trailing_or_after_opts(tool, style, monkeypatch):
    # A misspelled key must reach the config in both styles (and be named in the error).
    override = ["MODEL.BACKBONE.DEPHT", "18x"]
    argv = _TOOLS[tool] + (override if style == "trailing" else ["--opts", *override])
    monkeypatch.setattr(sys, "argv", [tool, *argv])
    module = _load_tool(tool)
    with pytest.raises(ConfigKeyError, match="MODEL.BACKBONE.DEPHT"):
        module.main(argv) if tool.endswith("visualize_result.py") else module.main()


def test_train_net_parser_merges_trailing_and_opts_overrides():
    from fastreid.engine import default_argument_parser

    args = default_argument_parser().parse_args(
        ["--config-file", RECIPE, "SOLVER.BASE_LR", "0.1", "--opts", "SEED", "3", "--resume"]
    )
    assert args.opts == ["SOLVER.BASE_LR", "0.1", "SEED", "3"] and args.resume


def test_utils_is_a_leaf_package():
    # utils/ is imported by every package, so it imports none of them (docstrings may name them).
    import ast

    offenders = []
    for path in (REPO / "fastreid" / "utils").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                inside = name.startswith("fastreid.") and not name.startswith("fastreid.utils")
                if inside or name.startswith(".."):
                    offenders.append(f"{path.name} imports {name}")
    assert not offenders


# -- one error line and exit code 2 ----------------------------------------------------------
def _error_line(capsys, func, *args) -> str:
    """Run ``func`` as a tool's main does; return its single ``error:`` line."""
    with pytest.raises(SystemExit) as info:
        exit_on_bad_input(func, *args)
    assert info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    return lines[0]


def test_base_cycle_names_the_chain(tmp_path, capsys):
    (tmp_path / "a.yml").write_text("_BASE_: b.yml\n")
    (tmp_path / "b.yml").write_text("_BASE_: a.yml\n")
    line = _error_line(capsys, get_cfg().merge_from_file, str(tmp_path / "a.yml"))
    assert "_BASE_ cycle" in line
    assert line.index("a.yml") < line.index("b.yml") < line.rindex("a.yml")


def test_missing_base_names_the_file_that_references_it(tmp_path, capsys):
    child = tmp_path / "child.yml"
    child.write_text("_BASE_: ../nowhere/Base.yml\n")
    line = _error_line(capsys, get_cfg().merge_from_file, str(child))
    assert f"'{child}' has _BASE_" in line and "Base.yml" in line


def test_test_set_without_any_true_match_is_one_error(capsys):
    from fastreid.evaluation import evaluate_rank

    distmat = torch.rand(2, 3).numpy()
    line = _error_line(
        capsys, evaluate_rank, distmat, [1, 2], [1, 3, 4], [0, 0], [0, 1, 1]
    )  # query 1's only match shares its camera; query 2 has none
    assert "None of the 2 queries has a true match" in line and "DATASETS.TESTS" in line


def test_negative_learning_rate_names_solver_base_lr(r18_model, capsys):
    from fastreid.solver import build_optimizer

    line = _error_line(capsys, build_optimizer, _cfg("SOLVER.BASE_LR", "-0.01"), r18_model)
    assert "SOLVER.BASE_LR is -0.01" in line


def test_failed_checkpoint_write_names_the_file_and_keeps_older_ones(
    r18_model, tmp_path, monkeypatch, capsys
):
    import errno

    from fastreid.utils import file_io

    checkpointer = Checkpointer(r18_model, str(tmp_path), save_to_disk=True)
    checkpointer.save("model_0000")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_io.os, "fsync", disk_full)
    line = _error_line(capsys, checkpointer.save, "model_0001")
    assert f"'{tmp_path / 'model_0001.pth'}'" in line and "No space left" in line
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000.pth"]
    assert checkpointer.get_checkpoint_file().endswith("model_0000.pth")


# -- interrupted saves -----------------------------------------------------------------------
def test_stale_temporary_files_of_interrupted_saves_are_removed(r18_model, tmp_path):
    checkpointer = Checkpointer(r18_model, str(tmp_path), save_to_disk=True)
    checkpointer.save("model_0000")
    stale = tmp_path / ".model_0001.pth.k2j3h4.tmp"
    stale.write_bytes(b"half a checkpoint")
    checkpointer.resume_or_load("", resume=True)
    assert not stale.exists() and (tmp_path / "model_0000.pth").exists()


def test_resume_falls_back_to_the_newest_intact_checkpoint(r18_model, tmp_path, caplog):
    import copy

    model = copy.deepcopy(r18_model)
    checkpointer = Checkpointer(model, str(tmp_path), save_to_disk=True)
    checkpointer.save("model_0000", epoch=0)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    checkpointer.save("model_0001", epoch=1)
    last = tmp_path / "model_0001.pth"
    last.write_bytes(last.read_bytes()[:1000])  # killed while the disk was flushing
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    with caplog.at_level(logging.WARNING):
        extra = checkpointer.resume_or_load("", resume=True)
    assert extra["epoch"] == 0
    assert "newest intact checkpoint" in caplog.text and "model_0000.pth" in caplog.text
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, good[key])


# -- unreadable evaluation images ------------------------------------------------------------
def _evaluate(items, num_query, skip_corrupt=True):
    from fastreid.data import build_reid_test_loader
    from fastreid.evaluation import ReidEvaluator

    dataset = CommDataset(items, relabel=False, skip_corrupt=skip_corrupt)
    loader, _ = build_reid_test_loader(dataset, test_batch_size=8, num_query=num_query)
    evaluator = ReidEvaluator(num_query)
    for batch in loader:
        images = torch.nn.functional.interpolate(batch["images"].float(), size=(8, 4))
        evaluator.process(batch, images.flatten(1))  # colour layout as the feature
    return evaluator.evaluate(), evaluator


def test_skip_corrupt_drops_unreadable_query_and_gallery_images_from_evaluation(
    synthetic_root, tmp_path, caplog
):
    from fastreid.data.datasets import DATASET_REGISTRY

    data = DATASET_REGISTRY.get("SyntheticReID")(root=str(synthetic_root), verbose=False)
    items = data.query + data.gallery
    broken = {1, len(data.query) + 2}  # one query and one gallery image
    copied = []
    for i, (path, pid, camid, *_) in enumerate(items):
        target = tmp_path / f"{i:04d}_{Path(path).name}"
        raw = Path(path).read_bytes()
        target.write_bytes(raw[:200] if i in broken else raw)
        copied.append((str(target), pid, camid))
    with caplog.at_level(logging.WARNING):
        results, evaluator = _evaluate(copied, len(data.query))
    assert "Dropped 2 unreadable images from the evaluation (1 query, 1 gallery" in caplog.text
    assert evaluator.num_dropped == 2
    # Exactly the metrics of the test set without those two images.
    readable = [item for i, item in enumerate(copied) if i not in broken]
    expected, _ = _evaluate(readable, len(data.query) - 1, skip_corrupt=False)
    assert results == pytest.approx(expected)


# -- training runs: test sets, checkpoints, losses, output folders ---------------------------
def _trainer_cfg(root: Path, output_dir: Path, *opts: str):
    return _cfg(
        "DATASETS.ROOT", str(root), "OUTPUT_DIR", str(output_dir), "MODEL.BACKBONE.DEPTH", "18x",
        "INPUT.SIZE_TRAIN", "[32,16]", "INPUT.SIZE_TEST", "[32,16]", "SOLVER.LOG_PERIOD", "1",
        "SOLVER.CHECKPOINT_PERIOD", "1", "TEST.EVAL_PERIOD", "5", *opts,
    )  # fmt: skip


def test_misspelled_test_set_stops_training_before_the_first_step(synthetic_root, tmp_path):
    from fastreid.engine import DefaultTrainer

    cfg = _trainer_cfg(synthetic_root, tmp_path, "DATASETS.TESTS", '("SyntheticReId",)')
    trainer = DefaultTrainer(cfg)
    steps = []
    trainer.register_hooks([_StepCounter(steps)])
    with pytest.raises(KeyError, match="Did you mean: SyntheticReID"):
        trainer.train()
    assert steps == [] and not list(tmp_path.glob("*.pth"))


class _StepCounter:
    """A hook that records the iterations it sees."""

    def __init__(self, steps):
        self.steps = steps

    def __getattr__(self, name):
        return lambda: None

    def after_step(self):
        self.steps.append(self.trainer.iter)


def test_test_set_without_gallery_or_true_match_is_refused_before_training(tmp_path):
    from fastreid.evaluation import ReidEvaluator
    from fastreid.evaluation.rank import NoTrueMatchError

    query = [("q0.jpg", 1, 0), ("q1.jpg", 2, 0)]
    same_camera = [("g0.jpg", 1, 0), ("g1.jpg", 3, 1), ("g2.jpg", -1, 1)]
    with pytest.raises(NoTrueMatchError, match=r"Test set 'Toy' \(DATASETS.TESTS\).*2 queries"):
        ReidEvaluator(2).check_test_set(CommDataset(query + same_camera, relabel=False), "Toy")
    with pytest.raises(ValueError, match=r"'Toy'.*2 query and 0 gallery images"):
        ReidEvaluator(2).check_test_set(CommDataset(query, relabel=False), "Toy")
    # One query with a match from another camera is enough.
    usable = same_camera + [("g3.jpg", 2, 1)]
    ReidEvaluator(2).check_test_set(CommDataset(query + usable, relabel=False), "Toy")


def test_the_epoch_is_saved_before_a_failing_evaluation(synthetic_root, tmp_path):
    from fastreid.engine import DefaultTrainer

    class BrokenTest(DefaultTrainer):
        @classmethod
        def test(cls, cfg, model):
            raise RuntimeError("evaluation crashed")

    trainer = BrokenTest(_trainer_cfg(synthetic_root, tmp_path, "SOLVER.MAX_EPOCH", "1"))
    with pytest.raises(RuntimeError, match="evaluation crashed"):
        trainer.train()
    assert (tmp_path / "model_final.pth").is_file()
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"


def test_nan_loss_is_one_error_naming_the_last_good_checkpoint(synthetic_root, tmp_path, capsys):
    from fastreid.engine import DefaultTrainer

    trainer = DefaultTrainer(_trainer_cfg(synthetic_root, tmp_path, "SOLVER.MAX_EPOCH", "2"))
    first_bad = trainer.iters_per_epoch  # the first step of the second epoch

    def poison(module, inputs, losses):
        if trainer.iter >= first_bad:
            return {k: v * float("nan") for k, v in losses.items()}
        return losses

    trainer.model.register_forward_hook(poison)
    line = _error_line(capsys, trainer.train)
    assert f"infinite or NaN at iteration {first_bad}" in line
    assert f"last good checkpoint is '{tmp_path / 'model_0000.pth'}'" in line
    assert "--resume" in line and "SOLVER.BASE_LR" in line
    assert not (tmp_path / "model_final.pth").exists()


def test_diverging_loss_warns_naming_the_learning_rate(caplog):
    import itertools

    from fastreid.engine import SimpleTrainer

    class Regression(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, batch):
            return {"loss_mse": ((self.w * batch["x"] - batch["y"]) ** 2).mean()}

    model = Regression()
    batch = {"x": torch.full((4,), 2.0), "y": torch.full((4,), 1.0)}
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # ~50x the loss per step
    trainer = SimpleTrainer(model, itertools.repeat(batch), optimizer, log_period=1)
    with caplog.at_level(logging.WARNING, logger="fastreid"):
        trainer.train(0, 1, 4)
    assert "training is diverging" in caplog.text
    assert "The learning rate is 1" in caplog.text and "SOLVER.BASE_LR" in caplog.text
    assert caplog.text.count("training is diverging") == 1


def test_stable_loss_gives_no_divergence_warning(caplog):
    import itertools

    from fastreid.engine import SimpleTrainer

    model = torch.nn.Linear(2, 1)
    batch = {"x": torch.ones(4, 2)}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = SimpleTrainer(
        _LossOf(model), itertools.repeat(batch), optimizer, log_period=1
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="fastreid"):
        trainer.train(0, 1, 4)
    assert "diverging" not in caplog.text


class _LossOf(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, batch):
        return {"loss": self.inner(batch["x"]).pow(2).mean() + 1.0}


def _setup_args(**flags):
    import argparse

    return argparse.Namespace(
        config_file="", resume=False, eval_only=False, overwrite=False, opts=[], **flags
    )


def test_output_dir_of_a_live_run_is_refused(tmp_path, capsys):
    import socket

    from fastreid.engine.output_dir import LOCK_NAME

    (tmp_path / LOCK_NAME).write_text(f"{os.getppid()} {socket.gethostname()}\n")
    cfg = _cfg("OUTPUT_DIR", str(tmp_path))
    line = _error_line(capsys, default_setup, cfg, _setup_args())
    assert f"OUTPUT_DIR '{tmp_path}' is in use by a running process (pid {os.getppid()}" in line
    assert not (tmp_path / "config.yaml").exists()


def test_stale_lock_of_a_dead_run_is_taken_over(tmp_path, caplog):
    import socket

    from fastreid.engine.output_dir import LOCK_NAME, release_output_dir

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid} {socket.gethostname()}\n")
    with caplog.at_level(logging.WARNING):
        default_setup(_cfg("OUTPUT_DIR", str(tmp_path)), _setup_args())
    assert f"left by process {dead.pid}, which is no longer running" in caplog.text
    assert (tmp_path / LOCK_NAME).read_text().split()[0] == str(os.getpid())
    release_output_dir(str(tmp_path))
    assert not (tmp_path / LOCK_NAME).exists()


def test_finished_run_is_not_overwritten_without_resume_or_overwrite(tmp_path, capsys):
    from fastreid.engine.output_dir import release_output_dir

    (tmp_path / "model_final.pth").write_bytes(b"trained weights")
    (tmp_path / "model_best.pth").write_bytes(b"best weights")
    (tmp_path / "last_checkpoint").write_text("model_final.pth")
    cfg = _cfg("OUTPUT_DIR", str(tmp_path))
    line = _error_line(capsys, default_setup, cfg, _setup_args())
    assert "holds a finished run" in line and "--resume" in line and "--overwrite" in line
    assert (tmp_path / "model_final.pth").read_bytes() == b"trained weights"
    # --resume continues it; --overwrite starts anew (the old resume pointer goes).
    default_setup(_cfg("OUTPUT_DIR", str(tmp_path)), _resume())
    release_output_dir(str(tmp_path))
    default_setup(_cfg("OUTPUT_DIR", str(tmp_path)), _overwrite())
    release_output_dir(str(tmp_path))
    assert not (tmp_path / "last_checkpoint").exists()
    # Evaluating into it is fine.
    default_setup(_cfg("OUTPUT_DIR", str(tmp_path)), _eval_only())
    release_output_dir(str(tmp_path))


def _resume():
    args = _setup_args()
    args.resume = True
    return args


def _overwrite():
    args = _setup_args()
    args.overwrite = True
    return args


def _eval_only():
    args = _setup_args()
    args.eval_only = True
    return args
