"""Non-re-ID data through the same registry and loaders: items without cameras, string test
labels, multi-label target vectors, a ``test`` split, self-retrieval; FastReID's size
conventions (SIZE [0] / [s] / [h, w]) and INPUT.CROP at train and test time."""

from __future__ import annotations

import os

import pytest
import torch

from fastreid.config import get_cfg
from fastreid.data import build_reid_test_loader, build_reid_train_loader
from fastreid.data.common import CommDataset
from fastreid.data.datasets import DATASET_REGISTRY, ImageDataset
from fastreid.data.transforms import build_transforms

from .conftest import write_image


def image(h: int, w: int) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8)


@pytest.mark.parametrize(
    "size, shape",
    [([0], (3, 40, 60)), ([20], (3, 20, 30)), ([24, 12], (3, 24, 12))],
)
def test_size_conventions_train_and_test(size, shape):
    cfg = get_cfg()
    cfg.INPUT.SIZE_TRAIN = size
    cfg.INPUT.SIZE_TEST = size
    for key in ("FLIP", "PADDING", "REA"):
        cfg.INPUT[key].ENABLED = False
    img = image(40, 60)
    assert build_transforms(cfg, is_train=True)(img).shape == shape
    out = build_transforms(cfg, is_train=False)(img)
    assert out.shape == shape
    if size == [0]:
        assert torch.equal(out, img.float())  # no resize: the pixels themselves


def test_crop_is_random_resized_in_training_and_center_at_test():
    cfg = get_cfg()
    cfg.INPUT.SIZE_TRAIN = [0]
    cfg.INPUT.SIZE_TEST = [32]  # shorter side to 32, then the centre 24x24
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.SIZE = [24]
    cfg.INPUT.CROP.SCALE = [0.08, 1.0]
    for key in ("FLIP", "PADDING", "REA"):
        cfg.INPUT[key].ENABLED = False
    img = image(32, 48)
    test_out = build_transforms(cfg, is_train=False)(img)
    assert test_out.shape == (3, 24, 24)
    assert torch.equal(test_out, img[:, 4:28, 12:36].float())  # plain centre crop
    train = build_transforms(cfg, is_train=True)
    outs = [train(img) for _ in range(4)]
    assert all(o.shape == (3, 24, 24) for o in outs)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])  # random crops


def test_items_without_camera_string_labels_and_target_vectors(tmp_path):
    paths = [str(tmp_path / f"{i}.png") for i in range(4)]
    for i, p in enumerate(paths):
        write_image(p, seed=i)
    # Test set: string labels, no camera -> contiguous ints in sorted order, camids -1.
    test = CommDataset([(paths[0], "dog", None), (paths[1], "cat", None)], relabel=False)
    assert [test[i]["targets"] for i in range(2)] == [1, 0]
    assert test[0]["camids"] == -1 and test.num_cameras == 0
    # Attributes: the label vector replaces the class label.
    attrs = [(p, None, None, {"targets": [1.0, 0.0, 1.0]}) for p in paths]
    train = CommDataset(attrs, relabel=True)
    assert train.num_classes == 3
    sample = train[0]
    assert sample["targets"].dtype == torch.float32
    assert sample["targets"].tolist() == [1.0, 0.0, 1.0]
    # Verification pairs: an extra per-item field travels into the batch.
    pairs = CommDataset(
        [(p, None, None, {"pair_same": i < 2}) for i, p in enumerate(paths)], relabel=False
    )
    assert [pairs[i]["pair_same"] for i in range(4)] == [True, True, False, False]


@DATASET_REGISTRY.register()
class SeamsAttrSet(ImageDataset):
    """Multi-label attribute set: a 2-vector per image, no camera, a ``test`` split."""

    dataset_name = "seamsattr"

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        folder = os.path.join(root, "seams_attr")
        items = [
            (os.path.join(folder, f"{i}.png"), None, None, {"targets": [float(i % 2), 1.0]})
            for i in range(12)
        ]
        super().__init__(items[:8], [], [], verbose=verbose, test=items[8:])


@DATASET_REGISTRY.register()
class SeamsSelfRetrieval(ImageDataset):
    """Retrieval list whose test split is searched against itself (query only)."""

    dataset_name = "seamsretri"

    def __init__(self, root: str = "", combineall: bool = False, verbose: bool = True) -> None:
        folder = os.path.join(root, "seams_attr")
        query = [(os.path.join(folder, f"{i}.png"), f"item{i // 2}", None) for i in range(6)]
        super().__init__([], query, [], verbose=verbose)


@pytest.fixture()
def attr_root(tmp_path):
    for i in range(12):
        write_image(str(tmp_path / "seams_attr" / f"{i}.png"), seed=i, size=(20, 10))
    return str(tmp_path)


def _cfg(root: str):
    cfg = get_cfg()
    cfg.DATASETS.ROOT = root
    cfg.DATASETS.NAMES = ("SeamsAttrSet",)
    cfg.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 4
    cfg.TEST.IMS_PER_BATCH = 3
    cfg.INPUT.SIZE_TRAIN = [0]
    cfg.INPUT.SIZE_TEST = [0]
    for key in ("FLIP", "PADDING", "REA"):
        cfg.INPUT[key].ENABLED = False
    return cfg


def test_train_loader_for_a_camera_less_multi_label_set(attr_root):
    loader = build_reid_train_loader(_cfg(attr_root))
    assert loader.dataset.num_classes == 2
    batch = next(iter(loader))
    assert batch["images"].shape == (4, 3, 20, 10) and batch["images"].dtype == torch.uint8
    assert batch["targets"].shape == (4, 2) and batch["targets"].dtype == torch.float32
    assert (batch["camids"] == -1).all()


def test_test_loader_reads_the_test_split_and_self_retrieval(attr_root):
    cfg = _cfg(attr_root)
    loader, num_query = build_reid_test_loader(cfg, "SeamsAttrSet")
    assert num_query == 4 == len(loader.dataset)
    assert isinstance(loader.dataset.source, SeamsAttrSet)
    assert loader.dataset.dataset_name == "SeamsAttrSet"
    targets = torch.cat([b["targets"] for b in loader])
    assert targets.tolist() == [[0.0, 1.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]

    loader, num_query = build_reid_test_loader(cfg, "SeamsSelfRetrieval")
    assert num_query == len(loader.dataset) == 6  # gallery empty: query searched against itself
    labels = torch.cat([b["targets"] for b in loader]).tolist()
    assert labels == [0, 0, 1, 1, 2, 2]
