"""RecordIO .rec/.idx, .bin pair files, the synthetic face sets and the face datasets."""

from __future__ import annotations

import io
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from projects.FastFace.fastface.datasets import VERIFICATION_SETS, PairImageDataset, RecFaceDataset
from projects.FastFace.fastface.pairs import PairFileError, read_pairs, write_pairs
from projects.FastFace.fastface.recordio import (
    MAGIC,
    FaceRecIndex,
    RecordIOError,
    RecordReader,
    RecordWriter,
    pack_record,
    unpack_record,
    write_face_rec,
)
from projects.FastFace.fastface.synthetic import generate_synthetic_faces


def _jpeg(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((112, 112, 3), value, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def test_record_bytes_are_mxnet_layout(tmp_path):
    rec = str(tmp_path / "a.rec")
    with RecordWriter(rec) as w:
        w.write(0, b"abcde")
    raw = open(rec, "rb").read()
    # magic, lrec (cflag 0, length 5), payload, 3 zero bytes of padding
    assert raw == struct.pack("<II", MAGIC, 5) + b"abcde" + b"\0\0\0"
    assert open(str(tmp_path / "a.idx")).read() == "0\t0\n"


def test_payload_with_magic_word_is_split_and_rejoined(tmp_path):
    magic = struct.pack("<I", MAGIC)
    payload = b"1234" + magic + b"5678" + magic + b"9" + magic  # last one unaligned
    rec = str(tmp_path / "m.rec")
    with RecordWriter(rec) as w:
        w.write(7, payload)
        w.write(8, b"tail")
    raw = open(rec, "rb").read()
    first = struct.unpack("<II", raw[:8])
    assert first == (MAGIC, (1 << 29) | 4)  # a "first part" of 4 bytes
    reader = RecordReader(rec)
    assert reader.read(7) == payload and reader.read(8) == b"tail"


def test_pack_unpack_scalar_and_array_labels():
    header, body = unpack_record(pack_record(3.0, b"img", rec_id=5))
    assert header.flag == 0 and header.label == 3.0 and header.id == 5 and body == b"img"
    header, body = unpack_record(pack_record([4, 9], b"x"))
    assert header.flag == 2 and list(header.label) == [4.0, 9.0] and body == b"x"


def test_face_rec_roundtrip_and_insightface_header(tmp_path):
    rec = str(tmp_path / "train.rec")
    items = [(0, _jpeg(10)), (1, _jpeg(200)), (0, _jpeg(90)), (2, _jpeg(150))]
    assert write_face_rec(rec, items) == (4, 3)
    index = FaceRecIndex(rec)
    assert len(index) == 4 and index.num_classes == 3
    header0 = index.reader.read_header(0)
    assert list(header0.label) == [5.0, 8.0]  # images 1..4, identity records 5..7
    assert [index.sample(i)[2] for i in range(4)] == [0, 0, 1, 2]
    ranges = [list(index.reader.read_header(k).label) for k in (5, 6, 7)]
    assert ranges == [[1.0, 3.0], [3.0, 4.0], [4.0, 5.0]]
    ds = RecFaceDataset(rec)
    sample = ds[2]
    assert sample["images"].shape == (3, 112, 112) and sample["targets"] == 1
    assert abs(int(sample["images"].float().mean()) - 200) <= 2


def test_rec_without_header_record_counts_labels(tmp_path):
    # FastReID crashes when record 0 has no label array; here every record is an image.
    rec = str(tmp_path / "plain.rec")
    with RecordWriter(rec) as w:
        for key, cls in enumerate([3, 3, 5]):
            w.write(key, pack_record(float(cls), _jpeg(50)))
    index = FaceRecIndex(rec)
    assert len(index) == 3 and index.num_classes == 2


def test_truncated_rec_and_idx_are_named(tmp_path):
    rec = str(tmp_path / "train.rec")
    write_face_rec(rec, [(0, _jpeg(10)), (1, _jpeg(20))])
    data = open(rec, "rb").read()
    idx = open(str(tmp_path / "train.idx")).read()
    # .rec cut in the middle of the last image record.
    cut = str(tmp_path / "cut.rec")
    open(cut, "wb").write(data[: int(idx.splitlines()[2].split("\t")[1]) + 30])
    open(str(tmp_path / "cut.idx"), "w").write("\n".join(idx.splitlines()[:3]) + "\n")
    with pytest.raises(RecordIOError, match="cut.rec is truncated"):
        FaceRecIndex(cut).sample(1)
    # .rec cut before a record the index points at.
    open(cut, "wb").write(data[:40])
    open(str(tmp_path / "cut.idx"), "w").write(idx)
    with pytest.raises(RecordIOError, match="truncated or belongs to another index"):
        FaceRecIndex(cut)
    # .idx cut mid-line.
    open(cut, "wb").write(data)
    open(str(tmp_path / "cut.idx"), "w").write(idx[:-3])
    with pytest.raises(RecordIOError, match="cut.idx is truncated"):
        FaceRecIndex(cut)
    # .idx cut at a line end: images announced by the header are missing.
    open(str(tmp_path / "cut.idx"), "w").write("\n".join(idx.splitlines()[:2]) + "\n")
    with pytest.raises(RecordIOError, match="lacks 1 image records"):
        FaceRecIndex(cut)
    os.remove(str(tmp_path / "cut.idx"))
    with pytest.raises(FileNotFoundError, match="cut.idx not found"):
        FaceRecIndex(cut)


def test_pairs_roundtrip_and_numpy_variant(tmp_path):
    path = str(tmp_path / "p.bin")
    write_pairs(path, [_jpeg(1), _jpeg(2), _jpeg(3), _jpeg(4)], [True, False])
    images, issame = read_pairs(path)
    assert len(images) == 4 and issame.tolist() == [True, False]
    # insightface files may hold uint8 arrays and numpy bools.
    arrays = [np.frombuffer(b, np.uint8) for b in images]
    with open(path, "wb") as f:
        pickle.dump((arrays, [np.bool_(True), np.bool_(False)]), f, protocol=2)
    images2, issame2 = read_pairs(path)
    assert images2 == images and issame2.tolist() == [True, False]


CALLS = []


def record_call(*args):
    CALLS.append(args)
    return True


class _Evil:
    def __init__(self, func):
        self.func = func

    def __reduce__(self):
        return (self.func, ("echo owned",))


@pytest.mark.parametrize("func, name", [(os.system, "system"), (record_call, "record_call")])
def test_malicious_pickle_is_refused_without_running(tmp_path, func, name):
    path = str(tmp_path / "evil.bin")
    with open(path, "wb") as f:
        pickle.dump(([b"x", b"y"], [_Evil(func)]), f, protocol=2)
    if func is record_call:  # a plain unpickler runs it
        pickle.loads(open(path, "rb").read())
        assert CALLS
        CALLS.clear()
    with pytest.raises(PairFileError, match=f"{name}' is not allowed"):
        read_pairs(path)
    assert CALLS == []


@pytest.mark.parametrize(
    "content, message",
    [
        ({"a": 1}, "not a pair list"),
        (([b"a", b"b", b"c"], [True]), "odd number of images"),
        (([b"a", b"b", b"c", b"d"], [True]), "4 images for 1 pair labels"),
        (([b"a", 3], [True]), "holds a int, not encoded image bytes"),
        (([b"a", b"b"], ["yes"]), "not booleans"),
    ],
)
def test_bad_pair_files(tmp_path, content, message):
    path = str(tmp_path / "bad.bin")
    with open(path, "wb") as f:
        pickle.dump(content, f, protocol=2)
    with pytest.raises(PairFileError, match=message):
        read_pairs(path)


def test_truncated_pair_file(tmp_path):
    path = str(tmp_path / "t.bin")
    write_pairs(path, [_jpeg(1), _jpeg(2)], [True])
    open(path, "r+b").truncate(50)
    with pytest.raises(PairFileError, match="truncated"):
        read_pairs(path)


def test_synthetic_sets_read_back_through_the_real_readers(tmp_path):
    out = str(tmp_path / "SyntheticFace")
    counts = generate_synthetic_faces(
        out, num_train_ids=3, images_per_id=2, num_val_ids=4, num_pairs=20
    )
    assert counts == {"train_images": 6, "train_ids": 3, "val_pairs": 20}
    train = RecFaceDataset(os.path.join(out, "train.rec"))
    assert train.num_classes == 3 and [train[i]["targets"] for i in range(6)] == [0, 0, 1, 1, 2, 2]
    val = VERIFICATION_SETS["SyntheticFaceVal"](root=str(tmp_path))
    assert len(val) == 20 and val.issame.sum() == 10
    images = PairImageDataset(val)
    first = images[0]["images"]
    assert first.shape == (3, 112, 112) and first.dtype == torch.uint8
    assert first.float().std() > 10  # a drawn face, not a flat image


def test_missing_verification_set_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="lfw.bin"):
        VERIFICATION_SETS["LFW"](root=str(tmp_path))


def test_identities_keep_traits_across_images():
    from projects.FastFace.fastface.synthetic import random_identity, render_face

    rng = np.random.default_rng(3)
    a, b = random_identity(rng), random_identity(rng)
    imgs_a = [render_face(a, rng).astype(np.float32) for _ in range(8)]
    imgs_b = [render_face(b, rng).astype(np.float32) for _ in range(8)]
    # Images of one identity differ (pose, light, ...) but less than images of two identities
    # in the central face region.
    crop = lambda im: im[30:90, 30:90].mean(axis=(0, 1))  # noqa: E731
    within = np.mean([np.abs(crop(imgs_a[i]) - crop(imgs_a[i + 1])).sum() for i in range(7)])
    assert within > 0
    assert not np.array_equal(imgs_a[0], imgs_a[1])
    across = np.mean([np.abs(crop(x) - crop(y)).sum() for x, y in zip(imgs_a, imgs_b)])
    assert across != within
