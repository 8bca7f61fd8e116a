"""DATALOADER.SKIP_CORRUPT means the same in every reader, the core's and the projects':

* off: an unreadable image is one CorruptImageError naming the file (or record) and the key;
* on, training data: the sample is replaced by a readable one (the run goes on);
* on, evaluation data: the sample is marked ``corrupt`` (the evaluator drops it), never
  replaced, so the metrics are over the readable images only;
* on, predict.py: the image is skipped with a warning, every other image is predicted.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from fastreid.data.common import CommDataset
from fastreid.data.data_utils import CorruptImageError
from projects.FastCls.fastcls.data import ClsDataset, ItemDataset
from projects.FastFace.fastface.datasets import RecFaceDataset
from projects.FastFace.fastface.recordio import write_face_rec


def _jpeg_bytes(value):
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture
def files(tmp_path):
    """Six images of three identities; image 2 is not an image."""
    paths = []
    for i in range(6):
        path = tmp_path / f"{i // 2:04d}_c{i % 2 + 1}s1_{i:06d}_00.jpg"
        path.write_bytes(b"broken" if i == 2 else _jpeg_bytes(40 * i))
        paths.append(str(path))
    return paths


def _items(paths, extras=False):
    if extras:  # FastAttr: attribute vectors instead of identities
        return [(p, None, None, {"targets": [i % 2, 1 - i % 2]}) for i, p in enumerate(paths)]
    return [(p, i // 2, i % 2) for i, p in enumerate(paths)]


# name -> build(paths, skip, evaluation) -> (dataset, bad index, text the error names)
READERS = {
    "core re-ID (CommDataset)": lambda p, skip, ev: (
        CommDataset(_items(p), relabel=not ev, skip_corrupt=skip),
        2,
        p[2],
    ),
    "FastAttr (attribute items)": lambda p, skip, ev: (
        CommDataset(_items(p, True), relabel=not ev, skip_corrupt=skip),
        2,
        p[2],
    ),
    "FastCls (ClsDataset)": lambda p, skip, ev: (
        ClsDataset(
            [(x, f"class{i // 2}", 0) for i, x in enumerate(p)],
            skip_corrupt=skip,
            for_evaluation=ev,
        ),
        2,
        p[2],
    ),
    "FastRetri (ItemDataset)": lambda p, skip, ev: (
        ItemDataset(_items(p), relabel=not ev, skip_corrupt=skip),
        2,
        p[2],
    ),
    "FastFace folders (FaceFolder items)": lambda p, skip, ev: (
        CommDataset(
            [(x, f"faces_{i // 2}", "0") for i, x in enumerate(p)], relabel=True, skip_corrupt=skip
        ),
        2,
        p[2],
    ),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("evaluation", [False, True])
def test_skip_corrupt_off_is_one_error_naming_the_file_and_the_key(files, reader, evaluation):
    dataset, bad, name = READERS[reader](files, False, evaluation)
    assert dataset[bad - 1]["images"].shape[0] == 3  # readable neighbours load
    with pytest.raises(CorruptImageError) as info:
        dataset[bad]
    assert name in str(info.value) and "DATALOADER.SKIP_CORRUPT" in str(info.value)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_skip_corrupt_on_replaces_a_training_image(files, reader, caplog):
    dataset, bad, name = READERS[reader](files, True, False)
    sample = dataset[bad]
    assert sample["img_paths"] != name and sample["images"].shape[0] == 3
    assert "corrupt" not in sample
    assert name in caplog.text  # the warning names it


@pytest.mark.parametrize(
    "reader", [r for r in sorted(READERS) if not r.startswith("FastFace folders")]
)  # face folders are training sets only (faces are evaluated on pair files)
def test_skip_corrupt_on_marks_an_evaluation_image(files, reader):
    dataset, bad, name = READERS[reader](files, True, True)
    sample = dataset[bad]
    assert sample["img_paths"] == name and sample["corrupt"] is True
    assert dataset[bad - 1]["corrupt"] is False


def test_face_rec_records_follow_the_same_rule(tmp_path, caplog):
    rec = str(tmp_path / "train.rec")
    write_face_rec(rec, [(0, _jpeg_bytes(10)), (0, b"broken"), (1, _jpeg_bytes(30))])
    with pytest.raises(CorruptImageError, match=r"train.rec record 2.*DATALOADER.SKIP_CORRUPT"):
        RecFaceDataset(rec)[1]
    skipping = RecFaceDataset(rec, skip_corrupt=True)
    sample = skipping[1]
    assert not sample["img_paths"].endswith("#2") and skipping.skipped == 1
    assert "train.rec record 2" in caplog.text
    assert torch.equal(skipping[0]["images"], RecFaceDataset(rec)[0]["images"])
