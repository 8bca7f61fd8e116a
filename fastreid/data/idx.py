"""Reading the idx files of MNIST / Fashion-MNIST (plain or gzipped) into numpy arrays.

An idx file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian int32 per dimension, then the data in C order (LeCun's MNIST page documents it).
"""

from __future__ import annotations

import gzip
import os
from typing import Dict, Optional, Tuple

import numpy as np

from fastreid.utils.errors import BadInputError

__all__ = ["IDX_REF_SEPARATOR", "IdxFileError", "cached_idx", "idx_image", "read_idx", "write_idx"]

# Images that live inside an idx file are named "<idx file>#<row>" in the item lists.
IDX_REF_SEPARATOR = "#"


# idx type code -> numpy dtype (multi-byte types are big-endian in the file).
_IDX_TYPES: Dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxFileError(BadInputError, ValueError):
    """An idx file is truncated or is not an idx file."""


def _open(path: str):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_idx(path: str) -> np.ndarray:
    """The array stored in the idx file ``path`` (gzip is detected from the content).

    Returns a native-endian array of the file's shape, e.g. (60000, 28, 28) uint8 images or
    (60000,) uint8 labels. Raises :class:`IdxFileError` naming the file when it is not a
    complete idx file.
    """
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError) as e:  # gzip raises these on truncated archives
        raise IdxFileError(f"Cannot read idx file {path}: {e}. Re-copy the file.") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise IdxFileError(
            f"{path} is not an idx file (bad magic number {data[:4].hex() or 'none'}). "
            "Expected e.g. train-images-idx3-ubyte(.gz) as published with MNIST/Fashion-MNIST."
        )
    dtype, ndim = _IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFileError(f"idx file {path} is truncated inside its header.")
    shape: Tuple[int, ...] = tuple(int(d) for d in np.frombuffer(data, ">i4", ndim, offset=4))
    count = int(np.prod(shape)) if shape else 0
    expected = header + count * dtype.itemsize
    if len(data) < expected:
        raise IdxFileError(
            f"idx file {path} is truncated: shape {shape} needs {expected} bytes, it has "
            f"{len(data)}. Re-copy the file."
        )
    array = np.frombuffer(data, dtype, count, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` as an idx file (gzipped with ``compress``); the inverse of :func:`read_idx`."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
    native = np.dtype(array.dtype).newbyteorder("=")
    if native not in codes:
        raise ValueError(f"idx files cannot hold dtype {array.dtype}.")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    payload = header + np.ascontiguousarray(array).astype(_IDX_TYPES[code]).tobytes()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with gzip.open(path, "wb") if compress else open(path, "wb") as f:
        f.write(payload)


# Decoded idx files of this process, by path (a training run reads each once).
_IDX_CACHE: Dict[str, np.ndarray] = {}


def cached_idx(path: str) -> np.ndarray:
    array = _IDX_CACHE.get(path)
    if array is None:
        array = _IDX_CACHE[path] = read_idx(path)
    return array


def idx_image(ref: str) -> Optional[np.ndarray]:
    """The (H, W) or (H, W, C) uint8 image an ``"<idx file>#<row>"`` reference names, or None
    when ``ref`` is a plain file path."""
    path, sep, row = ref.rpartition(IDX_REF_SEPARATOR)
    if not sep or not row.isdigit() or "idx" not in os.path.basename(path):
        return None
    return cached_idx(path)[int(row)]
