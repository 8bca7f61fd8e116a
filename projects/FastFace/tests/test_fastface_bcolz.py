"""FastReID's bcolz verification folders (faces_emore_val/<name>/ + <name>_list.npy), read
without bcolz: folders written here in that layout with Blosc (version 1) chunks, zlib-
compressed with byte shuffle (split and unsplit blocks), stored raw, and uncompressed."""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib

import numpy as np
import pytest
import torch

from projects.FastFace.fastface.bcolz import BcolzError, decode_blosc, read_bcolz_array
from projects.FastFace.fastface.datasets import VERIFICATION_SETS, PairImageDataset


def _blosc_zlib(data: bytes, typesize: int, blocksize: int, split: bool) -> bytes:
    """A Blosc v1 buffer: shuffled blocks, each one zlib stream or `typesize` streams."""
    nbytes = len(data)
    nblocks = -(-nbytes // blocksize)
    body, starts = b"", []
    offset = 16 + 4 * nblocks
    for b in range(nblocks):
        block = data[b * blocksize : (b + 1) * blocksize]
        n = len(block) // typesize
        shuffled = (
            bytes(block[i * typesize + j] for j in range(typesize) for i in range(n))
            + block[n * typesize :]
        )
        full = len(block) == blocksize
        parts = (
            [shuffled[j * n : (j + 1) * n] for j in range(typesize)]
            if split and full
            else [shuffled]
        )
        encoded = b""
        for part in parts:
            packed = zlib.compress(part, 6)
            if len(packed) >= len(part):
                packed = part  # stored raw, as Blosc does when compression does not help
            encoded += struct.pack("<i", len(packed)) + packed
        starts.append(offset + len(body))
        body += encoded
    flags = 0x01 | (3 << 5) | (0 if split else 0x10)  # shuffle, zlib, (don't split)
    ctbytes = 16 + 4 * nblocks + len(body)
    header = bytes([2, 1, flags, typesize]) + struct.pack("<III", nbytes, blocksize, ctbytes)
    return header + struct.pack(f"<{nblocks}i", *starts) + body


def _blosc_memcpy(data: bytes, typesize: int) -> bytes:
    header = bytes([2, 1, 0x02, typesize]) + struct.pack(
        "<III", len(data), len(data), 16 + len(data)
    )
    return header + data


def _write_bcolz(rootdir, array, chunklen, encode):
    os.makedirs(os.path.join(rootdir, "meta"))
    os.makedirs(os.path.join(rootdir, "data"))
    with open(os.path.join(rootdir, "meta", "sizes"), "w") as f:
        json.dump({"shape": list(array.shape), "nbytes": array.nbytes, "cbytes": 0}, f)
    with open(os.path.join(rootdir, "meta", "storage"), "w") as f:
        json.dump(
            {"dtype": str(array.dtype), "cparams": {"clevel": 5, "shuffle": 1, "cname": "zlib"},
             "chunklen": chunklen, "expectedlen": len(array), "dflt": 0.0},
            f,
        )  # fmt: skip
    for k, start in enumerate(range(0, len(array), chunklen)):
        chunk = np.zeros((chunklen,) + array.shape[1:], array.dtype)  # leftover chunk padded
        part = array[start : start + chunklen]
        chunk[: len(part)] = part
        header = b"blpk" + bytes([1, 0, 0, 0]) + struct.pack("<q", 1)
        with open(os.path.join(rootdir, "data", f"__{k}.blp"), "wb") as f:
            f.write(header + encode(chunk.tobytes(), array.dtype.itemsize))


def test_blosc_buffers_decode_to_their_bytes():
    rng = np.random.default_rng(0)
    data = (rng.integers(0, 4, 3000).astype(np.float32)).tobytes()  # compressible
    for split in (True, False):
        for blocksize in (4096, 1000):  # one block / several with a leftover block
            buf = _blosc_zlib(data, 4, blocksize, split)
            assert decode_blosc(buf) == data
    noise = rng.integers(0, 256, 777, dtype=np.uint8).tobytes()  # incompressible: raw streams
    assert decode_blosc(_blosc_zlib(noise, 1, 512, False)) == noise
    assert decode_blosc(_blosc_memcpy(noise, 1)) == noise
    with pytest.raises(BcolzError, match="truncated"):
        decode_blosc(_blosc_zlib(data, 4, 4096, True)[:-10])


def test_other_blosc_codecs_go_through_the_blosc_package(tmp_path, monkeypatch):
    import blosc

    rng = np.random.default_rng(1)
    _, array = _faces(5)
    data = (rng.integers(0, 4, 3000).astype(np.float32)).tobytes()
    # Buffers the Blosc library itself writes with bcolz's default codec (blosclz) and lz4.
    for cname in ("blosclz", "lz4"):
        assert decode_blosc(blosc.compress(data, typesize=4, cname=cname)) == data

        def encode(chunk: bytes, typesize: int, cname=cname) -> bytes:
            return blosc.compress(chunk, typesize=typesize, cname=cname)

        root = str(tmp_path / cname)
        _write_bcolz(root, array, chunklen=2, encode=encode)
        np.testing.assert_array_equal(read_bcolz_array(root), array)
    # Without the package such a chunk is one error naming the extra that brings it.
    buffer = blosc.compress(data, typesize=4, cname="blosclz")
    monkeypatch.setitem(sys.modules, "blosc", None)
    with pytest.raises(BcolzError, match=r"'blosclz' codec.*'face' extra"):
        decode_blosc(buffer)


def _faces(n, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, 3, 8, 8)).astype(np.uint8)
    return pixels, (pixels.astype(np.float32) - 127.5) / 127.5  # FastReID's [-1, 1] floats


def test_bcolz_array_with_a_leftover_chunk(tmp_path):
    _, array = _faces(7)
    for name, encode in (
        ("zlib", lambda b, t: _blosc_zlib(b, t, 2048, True)),
        ("memcpy", _blosc_memcpy),
    ):
        root = str(tmp_path / name)
        _write_bcolz(root, array, chunklen=3, encode=encode)  # chunks of 3, 3, 1(+2 padding)
        np.testing.assert_array_equal(read_bcolz_array(root), array)


def test_verification_set_from_fastreids_bcolz_folder(tmp_path):
    pixels, array = _faces(6)
    folder = tmp_path / "faces_emore_val"
    _write_bcolz(
        str(folder / "lfw"), array, chunklen=4, encode=lambda b, t: _blosc_zlib(b, t, 1536, True)
    )
    np.save(folder / "lfw_list.npy", np.array([True, False, True]))
    pairs = VERIFICATION_SETS["LFW"](root=str(tmp_path))
    assert pairs.issame.tolist() == [True, False, True] and len(pairs) == 3
    dataset = PairImageDataset(pairs)
    for i in range(6):
        sample = dataset[i]
        assert sample["images"].dtype == torch.uint8
        torch.testing.assert_close(sample["images"], torch.from_numpy(pixels[i]))
        assert sample["targets"] == i // 2
    # A chunk missing from the folder, and a list that does not match, are named.
    os.remove(folder / "lfw" / "data" / "__1.blp")
    with pytest.raises(BcolzError, match=r"__1.blp \(rows 4..5 of 6\)"):
        VERIFICATION_SETS["LFW"](root=str(tmp_path))
    _write_bcolz(str(folder / "calfw"), array, chunklen=6, encode=_blosc_memcpy)
    np.save(folder / "calfw_list.npy", np.array([True, False]))
    with pytest.raises(BcolzError, match="calfw_list.npy has 2 pairs but"):
        VERIFICATION_SETS["CALFW"](root=str(tmp_path))
