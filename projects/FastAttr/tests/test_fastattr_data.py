"""The attribute readers on tiny files written here: Market/Duke-attribute .mat (scipy),
PA-100K annotation.mat, the synthetic set's market_attribute.mat end to end, and their errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.synthetic import generate_synthetic_dataset
from projects.FastAttr.fastattr.datasets import (
    MARKET_FIELDS,
    PA100K,
    AttrDataset,
    Market1501Attr,
    check_same_attributes,
    positive_ratios,
    read_identity_attributes,
)


def _image(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((16, 8, 3), 100, np.uint8)).save(path)


def _split(fields: dict, pids: list) -> dict:
    out = {k: np.array([v], dtype=np.float64) for k, v in fields.items()}
    index = np.empty((1, len(pids)), dtype=object)
    index[0, :] = [f"{p:04d}" for p in pids]
    out["image_index"] = index
    return out


def _market(root: str, test_pids=(3, 4)) -> str:
    """Market-1501 folder with 2 train ids, 2 test ids, a distractor, junk, and a .mat with
    a 4-class 'age' and two binary fields."""
    folder = os.path.join(root, "Market-1501-v15.09.15")
    for name in ("0001_c1s1_000001_00.jpg", "0001_c2s1_000002_00.jpg", "0002_c1s1_000003_00.jpg"):
        _image(os.path.join(folder, "bounding_box_train", name))
    for name in (
        "0003_c1s1_000004_00.jpg",
        "0004_c3s1_000005_00.jpg",
        "0000_c1s1_000006_00.jpg",
        "-1_c1s1_000007_00.jpg",
    ):
        _image(os.path.join(folder, "bounding_box_test", name))
    train = _split({"age": [1, 4], "hat": [2, 1], "backpack": [1, 2]}, [1, 2])
    test = _split({"age": [3, 2], "hat": [1, 2], "backpack": [2, 2]}, list(test_pids))
    savemat(
        os.path.join(folder, "market_attribute.mat"),
        {"market_attribute": {"train": train, "test": test}},
    )
    return folder


def test_market_reader_expands_age_and_labels_by_identity(tmp_path):
    _market(str(tmp_path))
    dataset = DATASET_REGISTRY.get("Market1501Attr")(root=str(tmp_path), verbose=False)
    assert dataset.attribute_names == [
        "age_young",
        "age_teenager",
        "age_adult",
        "age_old",
        "backpack",
        "hat",
    ]
    by_name = {os.path.basename(p): e["targets"] for p, _, _, e in dataset.train}
    assert by_name["0001_c2s1_000002_00.jpg"] == [1, 0, 0, 0, 0, 1]
    assert by_name["0002_c1s1_000003_00.jpg"] == [0, 0, 0, 1, 1, 0]
    test = {os.path.basename(p): e["targets"] for p, _, _, e in dataset.test}
    assert set(test) == {"0003_c1s1_000004_00.jpg", "0004_c3s1_000005_00.jpg"}  # no 0 / -1
    assert test["0003_c1s1_000004_00.jpg"] == [0, 0, 1, 0, 1, 0]
    assert all(item[1] is None and item[2] is None for item in dataset.train + dataset.test)
    np.testing.assert_allclose(positive_ratios(dataset.train), [2 / 3, 0, 0, 1 / 3, 1 / 3, 2 / 3])
    assert dataset.test_items() == (dataset.test, 2)


def test_attribute_file_that_does_not_match_the_images_is_one_error(tmp_path):
    _market(str(tmp_path), test_pids=(3, 5))  # id 0004 has images but no attributes
    with pytest.raises(ValueError, match=r"does not match the images.*0004"):
        Market1501Attr(root=str(tmp_path), verbose=False)


def test_values_outside_the_field_classes_are_named(tmp_path):
    path = str(tmp_path / "bad.mat")
    split = _split({"age": [1, 5], "hat": [1, 2]}, [1, 2])
    savemat(path, {"market_attribute": {"train": split, "test": split}})
    with pytest.raises(ValueError, match=r"'train.age' has values \[5.0\]"):
        read_identity_attributes(path, "market_attribute")
    split = _split({"hat": [1, 3]}, [1, 2])
    savemat(path, {"market_attribute": {"train": split, "test": split}})
    with pytest.raises(ValueError, match=r"'train.hat' has values \[3.0\]"):
        read_identity_attributes(path, "market_attribute")
    with pytest.raises(KeyError, match="no 'duke_attribute' struct"):
        read_identity_attributes(path, "duke_attribute")


def test_duke_reader_reads_its_own_file(tmp_path):
    folder = tmp_path / "DukeMTMC-reID"
    _image(str(folder / "bounding_box_train" / "0001_c2_f0046182.jpg"))
    _image(str(folder / "bounding_box_test" / "0005_c2_f0046985.jpg"))
    savemat(
        str(folder / "duke_attribute.mat"),
        {
            "duke_attribute": {
                "train": _split({"boots": [2], "top": [1]}, [1]),
                "test": _split({"boots": [1], "top": [2]}, [5]),
            }
        },
    )
    dataset = DATASET_REGISTRY.get("DukeMTMCAttr")(root=str(tmp_path), verbose=False)
    assert dataset.attribute_names == ["boots", "top"]
    assert dataset.train[0][3]["targets"] == [1.0, 0.0]
    assert dataset.test[0][3]["targets"] == [0.0, 1.0]


def test_synthetic_set_through_the_market_reader(tmp_path):
    root = str(tmp_path)
    generate_synthetic_dataset(root, num_ids=6, seed=1, height=32, width=16)
    dataset = DATASET_REGISTRY.get("SyntheticAttr")(root=root, verbose=False)
    with open(os.path.join(root, "SyntheticReID", "attributes.json")) as f:
        truth = json.load(f)["identities"]
    # Independent check: the generator's own labels, mapped through Market's field coding.
    fields = sorted(field for field, _ in MARKET_FIELDS.values())
    assert dataset.attribute_names == fields
    for path, _, _, extras in dataset.train + dataset.test:
        pid = os.path.basename(path)[:4]
        for name, (field, present) in MARKET_FIELDS.items():
            value = extras["targets"][fields.index(field)]
            # Market label = code - 1: present (code `present`) gives present - 1.
            assert value == (present - 1 if truth[pid][name] else 2 - present), (path, name)
    train_ids = {os.path.basename(p)[:4] for p, *_ in dataset.train}
    test_ids = {os.path.basename(p)[:4] for p, *_ in dataset.test}
    assert train_ids == {"0001", "0002", "0003"} and test_ids == {"0004", "0005", "0006"}


def _pa100k(root: str, missing_image: bool = False) -> None:
    folder = os.path.join(root, "PA-100K")
    names = {s: [f"{s}{i}.jpg" for i in range(n)] for s, n in (("tr", 3), ("va", 1), ("te", 2))}
    for split in names.values():
        for name in split:
            _image(os.path.join(folder, "data", name))
    if missing_image:
        os.remove(os.path.join(folder, "data", "te1.jpg"))

    def cells(values):
        out = np.empty((len(values), 1), dtype=object)
        out[:, 0] = values
        return out

    labels = {"tr": [[1, 0], [0, 0], [1, 1]], "va": [[0, 1]], "te": [[1, 0], [0, 1]]}
    mat = {"attributes": cells(["Female", "Hat"])}
    for key, split in (("tr", "train"), ("va", "val"), ("te", "test")):
        mat[f"{split}_images_name"] = cells(names[key])
        mat[f"{split}_label"] = np.array(labels[key], dtype=np.uint8)
    savemat(os.path.join(folder, "annotation.mat"), mat)


def test_pa100k_reader_and_trainval(tmp_path):
    _pa100k(str(tmp_path))
    dataset = PA100K(root=str(tmp_path), verbose=False)
    assert dataset.attribute_names == ["Female", "Hat"]
    assert [e["targets"] for *_, e in dataset.train] == [[1, 0], [0, 0], [1, 1]]
    assert [os.path.basename(p) for p, *_ in dataset.test] == ["te0.jpg", "te1.jpg"]
    assert len(dataset.val) == 1
    trainval = PA100K(root=str(tmp_path), combineall=True, verbose=False)
    assert len(trainval.train) == 4 and trainval.train[-1][3]["targets"] == [0.0, 1.0]


def test_pa100k_annotation_listing_absent_images_is_one_error(tmp_path):
    _pa100k(str(tmp_path), missing_image=True)
    with pytest.raises(ValueError, match=r"does not match the images.*te1\.jpg"):
        PA100K(root=str(tmp_path), verbose=False)


def test_targets_outside_zero_one_are_refused():
    with pytest.raises(ValueError, match="must be 0 or 1"):
        AttrDataset(["age"], [("a.jpg", None, None, {"targets": [3.0]})], [], verbose=False)


def test_different_attribute_names_are_named():
    a = AttrDataset(["hat", "bag"], [], [], verbose=False)
    b = AttrDataset(["hat", "boots"], [], [], verbose=False)
    with pytest.raises(ValueError, match=r"only in AttrDataset: \['bag'\]"):
        check_same_attributes([a, b])
    assert check_same_attributes([a, AttrDataset(["hat", "bag"], [], [], verbose=False)]) == [
        "hat",
        "bag",
    ]


def test_market_attribute_mat_holds_the_same_labels(tmp_path):
    # The writer registered by FastAttr puts the file into every generated set.
    tiny_synthetic = str(tmp_path)
    generate_synthetic_dataset(tiny_synthetic, num_ids=12, seed=0, height=32, width=16)
    from scipy.io import loadmat

    folder = os.path.join(tiny_synthetic, "SyntheticReID")
    with open(os.path.join(folder, "attributes.json")) as f:
        table = json.load(f)["identities"]
    mat = loadmat(os.path.join(folder, "market_attribute.mat"))["market_attribute"][0, 0]
    seen = []
    for split in ("train", "test"):
        part = mat[split][0, 0]
        pids = [str(cell[0]) for cell in part["image_index"][0]]
        seen += pids
        for column, pid in enumerate(pids):
            labels = table[pid]
            # Market codes: 1 = no, 2 = yes; "clothes" is 1 = dress (our skirt), 2 = pants.
            assert part["hat"][0, column] == 1 + labels["hat"]
            assert part["hair"][0, column] == 1 + labels["long_hair"]
            assert part["up"][0, column] == 1 + labels["short_sleeve"]
            assert part["clothes"][0, column] == 2 - labels["skirt"]
            assert part["upred"][0, column] == 1 + labels["upper_red"]
            assert part["downbrown"][0, column] == 1 + labels["lower_brown"]
    assert sorted(seen) == sorted(table)  # every identity once, train ids before test ids
    assert seen[: len(seen) // 2] == sorted(seen)[: len(seen) // 2]
