"""Bad input, datasets, samplers and images: unknown names, missing folders, corrupt files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fastreid.data import CorruptImageError, build_reid_train_loader
from fastreid.data.common import CommDataset
from fastreid.data.datasets.bases import DatasetNotFoundError
from fastreid.modeling import build_model
from fastreid.utils.errors import describe_error

from ..bad_input import small_cfg

pytestmark = pytest.mark.filterwarnings(
    "ignore:The image decoding and encoding capabilities:DeprecationWarning"
)


# -- registries, datasets, sampler -------------------------------------------------------------
def test_misspelled_backbone_name_suggests_the_registered_one():
    cfg = small_cfg("MODEL.BACKBONE.NAME", "build_resnet_bakbone")
    with pytest.raises(KeyError, match="Did you mean: build_resnet_backbone"):
        build_model(cfg)


def test_unknown_dataset_name_suggests_the_registered_one(tiny_reid_root):
    cfg = small_cfg("DATASETS.NAMES", '("Market1502",)', "DATASETS.ROOT", str(tiny_reid_root))
    with pytest.raises(KeyError, match="Did you mean: Market1501"):
        build_reid_train_loader(cfg)


def test_missing_dataset_folder_says_where_to_put_it(tmp_path):
    cfg = small_cfg("DATASETS.NAMES", '("Market1501",)', "DATASETS.ROOT", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"(?s)Market-1501.*FASTREID_DATASETS"):
        build_reid_train_loader(cfg)


def test_num_instance_bigger_than_the_batch_names_both_keys(tiny_reid_root):
    cfg = small_cfg("DATALOADER.NUM_INSTANCE", "32", "DATASETS.ROOT", str(tiny_reid_root))
    with pytest.raises(ValueError, match=r"SOLVER\.IMS_PER_BATCH.*DATALOADER\.NUM_INSTANCE"):
        build_reid_train_loader(cfg)


# -- images ----------------------------------------------------------------------------------
def _truncated_training_items(tiny_reid_root: Path, tmp_path: Path):
    folder = tiny_reid_root / "SyntheticReID" / "bounding_box_train"
    items = []
    for i, source in enumerate(sorted(folder.glob("*.jpg"))[:3]):
        target = tmp_path / source.name
        data = source.read_bytes()
        target.write_bytes(data[:300] if i == 0 else data)  # the first one is truncated
        items.append((str(target), "synthetic_1", "synthetic_c1"))
    return items


def test_truncated_jpeg_error_names_the_file_and_the_skip_key(tiny_reid_root, tmp_path):
    items = _truncated_training_items(tiny_reid_root, tmp_path)
    with pytest.raises(CorruptImageError) as info:
        CommDataset(items)[0]
    assert items[0][0] in str(info.value)
    assert "DATALOADER.SKIP_CORRUPT True" in str(info.value)


def test_skip_corrupt_replaces_a_truncated_jpeg_with_a_warning(tiny_reid_root, tmp_path, caplog):
    items = _truncated_training_items(tiny_reid_root, tmp_path)
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
