"""Reading FastReID's bcolz verification folders without the (abandoned) bcolz package.

FastReID (after InsightFace_Pytorch) keeps each verification set as a bcolz ``carray``
root folder, ``<root>/faces_emore_val/<name>/``, of shape ``(2P, 3, 112, 112)`` float32 RGB in
[-1, 1], beside ``<name>_list.npy`` (the ``issame`` bools of the P pairs). The folder holds:

* ``meta/sizes``: JSON ``{"shape": [...], "nbytes": ..., "cbytes": ...}``;
* ``meta/storage``: JSON ``{"dtype": ..., "cparams": {...}, "chunklen": N, ...}``;
* ``data/__<k>.blp``: chunk k (``chunklen`` rows; the last one holds the leftover rows,
  padded): a 16-byte bloscpack header (``b"blpk"``, version, 3 reserved bytes, int64 chunk
  count) followed by one Blosc (version 1 format) buffer.

A Blosc buffer is a 16-byte header (version, versionlz, flags, typesize, then uint32 nbytes,
blocksize, ctbytes), then either the raw bytes (flag 0x02, "memcpyed") or a table of block
offsets and the blocks. A block is one compressed stream, or ``typesize`` streams (one per
byte position, when split), each an int32 size followed by the data (stored raw when the size
equals the stream's length); with flag 0x01 the block's bytes are byte-shuffled.

Decoded here with the standard library: uncompressed (memcpyed) buffers and the ``zlib``
codec. The other Blosc codecs (``blosclz``, bcolz's default, ``lz4``, ``snappy``, ``zstd``)
are decoded by the ``blosc`` package when it is installed (the ``face`` extra); without it
such a folder is one error naming the package.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from typing import Callable, Optional, Tuple

import numpy as np

from fastreid.utils.dependencies import install_hint
from fastreid.utils.errors import BadInputError

__all__ = ["BcolzError", "decode_blosc", "read_bcolz_array", "read_bcolz_pairs"]

_BLOSCPACK_MAGIC = b"blpk"
_BLOSCPACK_HEADER = 16
_BLOSC_HEADER = 16
_CODECS = {0: "blosclz", 1: "lz4", 2: "snappy", 3: "zlib", 4: "zstd"}
_SHUFFLE, _MEMCPYED, _BITSHUFFLE, _DONT_SPLIT = 0x01, 0x02, 0x04, 0x10
_MAX_SPLITS, _MIN_BUFFERSIZE = 16, 128


class BcolzError(BadInputError, ValueError):
    """A bcolz folder or Blosc chunk that is missing, truncated or not decodable here."""


def _unshuffle(data: bytes, typesize: int) -> bytes:
    """Undo Blosc's byte shuffle: byte j of every element is stored together."""
    count = len(data) // typesize
    body = np.frombuffer(data, np.uint8, count * typesize).reshape(typesize, count)
    return body.T.tobytes() + data[count * typesize :]


def _external_blosc(buffer: bytes, where: str, codec: str) -> bytes:
    try:
        import blosc  # the python-blosc package
    except ImportError:
        raise BcolzError(
            f"{where} is compressed with Blosc's '{codec}' codec, which needs the 'blosc' "
            f"package (fastreid's 'face' extra): {install_hint('blosc')}. (Only zlib-compressed "
            "or uncompressed bcolz chunks are read without it.)"
        ) from None
    try:
        return blosc.decompress(buffer)
    except Exception as e:  # blosc raises several types for a bad buffer
        raise BcolzError(f"{where}: Blosc cannot decompress it ({e}).") from None


def decode_blosc(buffer: bytes, where: str = "Blosc buffer") -> bytes:
    """The uncompressed bytes of one Blosc (version 1 format) buffer."""
    if len(buffer) < _BLOSC_HEADER:
        raise BcolzError(f"{where} is {len(buffer)} bytes, shorter than a Blosc header.")
    _, _, flags, typesize = buffer[:4]
    nbytes, blocksize, ctbytes = struct.unpack("<III", buffer[4:16])
    if ctbytes > len(buffer):
        raise BcolzError(f"{where} is truncated: {len(buffer)} of {ctbytes} bytes.")
    if flags & _MEMCPYED:
        if len(buffer) < _BLOSC_HEADER + nbytes:
            raise BcolzError(f"{where} is truncated: {len(buffer)} bytes for {nbytes}.")
        return bytes(buffer[_BLOSC_HEADER : _BLOSC_HEADER + nbytes])
    codec = _CODECS.get(flags >> 5, f"code {flags >> 5}")
    if codec != "zlib" or flags & _BITSHUFFLE:
        return _external_blosc(buffer, where, codec if codec != "zlib" else "bitshuffle")
    if nbytes == 0:
        return b""
    if blocksize == 0:
        raise BcolzError(f"{where}: its header gives a block size of 0.")
    typesize = max(1, typesize)
    nblocks = -(-nbytes // blocksize)
    starts = struct.unpack(f"<{nblocks}i", buffer[16 : 16 + 4 * nblocks])
    out = bytearray()
    for b, start in enumerate(starts):
        size = blocksize if b < nblocks - 1 or nbytes % blocksize == 0 else nbytes % blocksize
        leftover = size != blocksize
        split = (
            not flags & _DONT_SPLIT
            and not leftover
            and typesize <= _MAX_SPLITS
            and size // typesize >= _MIN_BUFFERSIZE
        )
        nsplits = typesize if split else 1
        stream_len = size // nsplits
        pos, block = start, bytearray()
        for _ in range(nsplits):
            if pos + 4 > len(buffer):
                raise BcolzError(f"{where} is truncated in block {b}.")
            (csize,) = struct.unpack("<i", buffer[pos : pos + 4])
            pos += 4
            data = bytes(buffer[pos : pos + csize])
            pos += csize
            if len(data) != csize:
                raise BcolzError(f"{where} is truncated in block {b}.")
            if csize == stream_len:
                block += data  # stored raw
                continue
            try:
                part = zlib.decompress(data)
            except zlib.error as e:
                raise BcolzError(f"{where}: block {b} is not valid zlib data ({e}).") from None
            if len(part) != stream_len:
                raise BcolzError(
                    f"{where}: block {b} decompresses to {len(part)} bytes, not {stream_len}."
                )
            block += part
        out += _unshuffle(bytes(block), typesize) if flags & _SHUFFLE else block
    if len(out) != nbytes:
        raise BcolzError(f"{where} decompresses to {len(out)} bytes, not {nbytes}.")
    return bytes(out)


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except OSError as e:
        raise BcolzError(f"Cannot read {path}: {e.strerror or e}; is it a bcolz folder?") from None
    except json.JSONDecodeError as e:
        raise BcolzError(f"{path} is not valid JSON ({e}); copy the bcolz folder again.") from None
    if not isinstance(value, dict):
        raise BcolzError(f"{path} should hold a JSON object.")
    return value


def read_bcolz_array(
    rootdir: str,
    convert: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    out_dtype: Optional[np.dtype] = None,
) -> np.ndarray:
    """A bcolz ``carray`` root folder as a numpy array (see the module docstring).

    ``convert`` is applied chunk by chunk, the result stored as ``out_dtype`` (so a large
    float32 set can be kept as uint8 without holding it whole as float)."""
    sizes = _read_json(os.path.join(rootdir, "meta", "sizes"))
    storage = _read_json(os.path.join(rootdir, "meta", "storage"))
    try:
        shape = tuple(int(s) for s in sizes["shape"])
        dtype = np.dtype(storage["dtype"])
        chunklen = int(storage["chunklen"])
    except (KeyError, TypeError, ValueError) as e:
        raise BcolzError(
            f"{rootdir}/meta: sizes needs 'shape', storage 'dtype' and 'chunklen' ({e})."
        ) from None
    if not shape or chunklen < 1:
        raise BcolzError(f"{rootdir}/meta: shape {shape} and chunklen {chunklen} are not usable.")
    row = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    result = np.empty(shape, dtype=out_dtype or dtype)
    for k, start in enumerate(range(0, shape[0], chunklen)):
        rows = min(chunklen, shape[0] - start)
        path = os.path.join(rootdir, "data", f"__{k}.blp")
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise BcolzError(
                f"Cannot read {path} (rows {start}..{start + rows - 1} of {shape[0]}): "
                f"{e.strerror or e}. Copy the bcolz folder again."
            ) from None
        if raw[:4] != _BLOSCPACK_MAGIC:
            raise BcolzError(f"{path} does not start with the bloscpack marker 'blpk'.")
        data = decode_blosc(raw[_BLOSCPACK_HEADER:], path)
        if len(data) < rows * row:
            raise BcolzError(f"{path} holds {len(data)} bytes, fewer than its {rows} rows need.")
        chunk = np.frombuffer(data, dtype, rows * row // dtype.itemsize).reshape(
            (rows,) + shape[1:]
        )
        result[start : start + rows] = convert(chunk) if convert is not None else chunk
    return result


def read_bcolz_pairs(folder: str, name: str) -> Tuple[np.ndarray, np.ndarray]:
    """FastReID's verification set ``name`` in ``folder`` (``<name>/`` bcolz + ``<name>_list.npy``)
    as ``(uint8 images (2P, 3, H, W) in 0..255, issame (P,) bools)``."""
    rootdir = os.path.join(folder, name)

    def to_bytes(chunk: np.ndarray) -> np.ndarray:
        # [-1, 1] floats (x / 127.5 - 1 of the original bytes) back to 0..255.
        return np.clip(np.rint(chunk.astype(np.float32) * 127.5 + 127.5), 0, 255)

    array = read_bcolz_array(rootdir, to_bytes, np.uint8)
    if array.ndim != 4 or array.shape[1] != 3:
        raise BcolzError(f"{rootdir} has shape {array.shape}; expected (2P, 3, H, W) images.")
    list_path = os.path.join(folder, f"{name}_list.npy")
    try:
        issame = np.load(list_path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise BcolzError(f"Cannot read {list_path} as a numpy bool array ({e}).") from None
    issame = np.asarray(issame).reshape(-1).astype(bool)
    if 2 * len(issame) != len(array):
        raise BcolzError(
            f"{list_path} has {len(issame)} pairs but {rootdir} holds {len(array)} images "
            f"(2 per pair: {2 * len(issame)})."
        )
    return array, issame
