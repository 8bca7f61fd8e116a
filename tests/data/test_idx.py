"""idx files: round trip, gzip detection and one clear error for broken files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from fastreid.data.idx import IdxFileError, read_idx, write_idx


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_round_trip(tmp_path, compress, dtype):
    array = (np.arange(2 * 3 * 4).reshape(2, 3, 4) * 7 % 251).astype(dtype)
    path = str(tmp_path / "a-idx3")
    write_idx(path, array, compress=compress)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)


def test_header_layout_is_the_published_one(tmp_path):
    # MNIST's documented layout: 0x00000803, then big-endian dims, then the bytes.
    path = tmp_path / "img-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 5, 6, 7, 8]))
    np.testing.assert_array_equal(read_idx(str(path)), [[[5, 6]], [[7, 8]]])


def test_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 10, 1, 2, 3]))
    with pytest.raises(IdxFileError, match=r"labels-idx1-ubyte.gz is truncated"):
        read_idx(str(path))


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(b"\x89PNG\r\n\x1a\n....")
    with pytest.raises(IdxFileError, match="not an idx file"):
        read_idx(str(path))
