"""CUB/Cars196/SOP/In-Shop list files and the zero-shot Fashion-MNIST split."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.synthetic.fashion_mnist import write_fashion_mnist_like as make_fashion_mnist
from projects.FastRetri.fastretri import ListFileError


def _write_set(folder, lists):
    """``lists``: {list name: [(relative path, label), ...]}; writes images and list files."""
    os.makedirs(folder, exist_ok=True)
    for name, entries in lists.items():
        with open(os.path.join(folder, name), "w") as f:
            for rel, label in entries:
                path = os.path.join(folder, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if not os.path.exists(path):
                    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
                f.write(f"{rel},{label}\n")


@pytest.mark.parametrize(
    "name,folder",
    [("CUB", "CUB_200_2011"), ("Cars196", "Cars_196"), ("SOP", "Stanford_Online_Products")],
)
def test_self_retrieval_sets(tmp_path, name, folder):
    _write_set(
        str(tmp_path / folder),
        {
            "train.txt": [
                ("images/001/a.jpg", 1),
                ("images/001/b.jpg", 1),
                ("images/002/c.jpg", 2),
            ],
            "test.txt": [
                ("images/101/d.jpg", 101),
                ("images/101/e.jpg", 101),
                ("images/102/f.jpg", 102),
            ],
        },
    )
    data = DATASET_REGISTRY.get(name)(root=str(tmp_path), verbose=False)
    prefix = data.dataset_name
    assert [item[1] for item in data.train] == [f"{prefix}_1", f"{prefix}_1", f"{prefix}_2"]
    assert [item[1] for item in data.query] == [101, 101, 102]
    assert data.gallery == []  # the test split is searched against itself
    assert data.query[0][0] == os.path.join(str(tmp_path / folder), "images/101/d.jpg")


def test_inshop_query_and_gallery(tmp_path):
    _write_set(
        str(tmp_path / "InShop"),
        {
            "train.txt": [("img/a.jpg", "id_1"), ("img/b.jpg", "id_1")],
            "test_query.txt": [("img/q1.jpg", "id_7"), ("img/q2.jpg", "id_9")],
            "test_gallery.txt": [
                ("img/g1.jpg", "id_9"),
                ("img/g2.jpg", "id_7"),
                ("img/g3.jpg", "id_8"),
            ],
        },
    )
    data = DATASET_REGISTRY.get("InShop")(root=str(tmp_path), verbose=False)
    assert len(data.query) == 2 and len(data.gallery) == 3
    # String labels are numbered jointly over query and gallery.
    assert [q[1] for q in data.query] == [0, 2] and [g[1] for g in data.gallery] == [2, 0, 1]


def test_missing_image_names_the_line(tmp_path):
    folder = tmp_path / "CUB_200_2011"
    _write_set(
        str(folder), {"train.txt": [("i/a.jpg", 1)], "test.txt": [("i/b.jpg", 2), ("i/c.jpg", 2)]}
    )
    with open(folder / "test.txt", "a") as f:
        f.write("\ni/missing.jpg,3\n")
    with pytest.raises(
        ListFileError, match=r"test.txt, line 4: image .*i/missing.jpg does not exist"
    ):
        DATASET_REGISTRY.get("CUB")(root=str(tmp_path), verbose=False)


def test_malformed_line_names_the_line(tmp_path):
    folder = tmp_path / "Cars_196"
    _write_set(str(folder), {"train.txt": [("i/a.jpg", 1)], "test.txt": [("i/b.jpg", 2)]})
    with open(folder / "train.txt", "a") as f:
        f.write("i/a.jpg 1\n")
    with pytest.raises(
        ListFileError, match=r"train.txt, line 2: expected 'relative/image/path,label'"
    ):
        DATASET_REGISTRY.get("Cars196")(root=str(tmp_path), verbose=False)


def test_missing_list_file_shows_the_layout(tmp_path):
    (tmp_path / "Stanford_Online_Products").mkdir()
    with pytest.raises(
        FileNotFoundError,
        match=r"(?s)missing .*train.txt.*Expected layout:\n<root>/Stanford_Online_Products/",
    ):
        DATASET_REGISTRY.get("SOP")(root=str(tmp_path), verbose=False)


def test_fashion_mnist_zero_shot_split(tmp_path):
    make_fashion_mnist(str(tmp_path / "fashion-mnist"), per_class=3, test_per_class=2)
    data = DATASET_REGISTRY.get("FashionMNISTZeroShot")(root=str(tmp_path), verbose=False)
    assert sorted({item[1] for item in data.train}) == [f"fmnistzs_{c}" for c in range(5)]
    assert len(data.train) == 15
    assert sorted({item[1] for item in data.query}) == [5, 6, 7, 8, 9] and len(data.query) == 10
    assert data.gallery == []
