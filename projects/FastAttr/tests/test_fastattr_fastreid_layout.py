"""FastReID's 27-output Market1501-attribute layout (DATASETS.ATTR_MULTI_CLASS fastreid), and
.mat fields that are not numbers named by file, split and field."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from fastreid.config import get_cfg
from fastreid.utils.errors import BadInputError
from projects.FastAttr.fastattr.config import add_attr_config
from projects.FastAttr.fastattr.datasets import read_identity_attributes
from projects.FastAttr.fastattr.trainer import build_attribute_datasets

# Market1501-attribute's 27 fields: the 4-class age and 26 binary ones.
BINARY = [f"field{i:02d}" for i in range(26)]


def _row(values):
    return np.array([values], dtype=np.float64)


def _index(pids):
    index = np.empty((1, len(pids)), dtype=object)
    index[0, :] = [f"{p:04d}" for p in pids]
    return index


def _market(root, pids=(1, 2, 3, 4)):
    folder = os.path.join(root, "Market-1501-v15.09.15")
    for sub, pid in (("bounding_box_train", 1), ("bounding_box_train", 2)) + (
        ("bounding_box_test", 3),
        ("bounding_box_test", 4),
    ):
        path = os.path.join(folder, sub, f"{pid:04d}_c1s1_00000{pid}_00.jpg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(np.full((16, 8, 3), 90, np.uint8)).save(path)
    rng = np.random.default_rng(0)

    def split(ids):
        out = {name: _row(rng.integers(1, 3, len(ids))) for name in BINARY}
        out["age"] = _row([1, 4] if ids[0] == 1 else [2, 3])
        out["image_index"] = _index(ids)
        return out

    mat = os.path.join(folder, "market_attribute.mat")
    savemat(mat, {"market_attribute": {"train": split([1, 2]), "test": split([3, 4])}})
    return mat


def _cfg(root, layout):
    cfg = get_cfg()
    add_attr_config(cfg)
    cfg.merge_from_list(["DATASETS.ROOT", str(root), "DATASETS.ATTR_MULTI_CLASS", layout])
    return cfg


def test_fastreid_layout_gives_27_outputs_with_one_for_age(tmp_path):
    mat = _market(str(tmp_path))
    (ours,) = build_attribute_datasets(_cfg(tmp_path, "one_hot"), ["Market1501Attr"])
    (theirs,) = build_attribute_datasets(_cfg(tmp_path, "fastreid"), ["Market1501Attr"])
    assert ours.num_attributes == 30 and theirs.num_attributes == 27
    # FastReID's order: the fields sorted by name, age first here.
    assert theirs.attribute_names == ["age"] + BINARY
    age = {os.path.basename(p)[:4]: e["targets"][0] for p, _, _, e in theirs.train + theirs.test}
    assert age == {"0001": 0.0, "0002": 1.0, "0003": 1.0, "0004": 1.0}  # young or not
    # The binary fields are the same columns in both layouts.
    ours_rows = {p: e["targets"][4:] for p, _, _, e in ours.train}
    for p, _, _, e in theirs.train:
        assert e["targets"][1:] == ours_rows[p]
    with pytest.raises(BadInputError, match="ATTR_MULTI_CLASS is 'onehot'"):
        read_identity_attributes(mat, "market_attribute", "onehot")


def _bad_mat(tmp_path, train):
    path = str(tmp_path / "bad.mat")
    good = {"hat": _row([1, 2]), "image_index": _index([1, 2])}
    savemat(path, {"market_attribute": {"train": train, "test": good}})
    return path


def test_text_field_names_file_split_and_field(tmp_path):
    path = _bad_mat(tmp_path, {"hat": "yes", "image_index": _index([1, 2])})
    with pytest.raises(BadInputError) as info:
        read_identity_attributes(path, "market_attribute")
    message = str(info.value)
    assert path in message and "'market_attribute.train.hat'" in message
    assert "not a row of numbers" in message


def test_non_numeric_image_index_names_file_split_and_field(tmp_path):
    index = np.empty((1, 2), dtype=object)
    index[0, :] = ["0001", "person2"]
    path = _bad_mat(tmp_path, {"hat": _row([1, 2]), "image_index": index})
    with pytest.raises(BadInputError) as info:
        read_identity_attributes(path, "market_attribute")
    message = str(info.value)
    assert path in message and "'market_attribute.train.image_index' entry 1" in message
    assert "'person2'" in message
