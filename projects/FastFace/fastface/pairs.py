"""Verification pair files (insightface ``lfw.bin``, ``cfp_fp.bin``, ...).

A ``.bin`` is a pickle of ``(images, issame)``: ``images`` a list of 2P encoded image files
(bytes, or uint8 numpy arrays of the file bytes), ``issame`` a list of P booleans; images
``2k`` and ``2k+1`` form pair ``k``. The files were written by Python 2, so they are read with
``encoding="bytes"``.

Unpickling runs code named in the file. :func:`read_pairs` therefore uses a restricted
unpickler that resolves only the few harmless globals such files need (numpy array and scalar
reconstruction, ``_codecs.encode`` for bytes under protocol 2); anything else is refused.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any, List, Sequence, Tuple

import numpy as np

from fastreid.utils.errors import BadInputError

__all__ = ["PairFileError", "RestrictedUnpickler", "read_pairs", "write_pairs"]


class PairFileError(BadInputError, ValueError):
    """A ``.bin`` pair file that is not a pair list (or tries to run code)."""


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "bytes"),
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only bytes, lists, tuples, bools, numbers, strings and numpy arrays/scalars."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a pair file")


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise TypeError(type(item).__name__)


def read_pairs(path: str) -> Tuple[List[bytes], np.ndarray]:
    """Read a ``.bin`` pair file: ``(2P encoded images, issame bool array (P,))``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Verification pair file {path} not found.")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        obj = RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise PairFileError(
            f"{path} is not a verification pair file ({e}); it must be a pickle of "
            "(list of image bytes, list of bools), as insightface's lfw.bin."
        ) from None
    except Exception as e:  # truncated or not a pickle at all
        raise PairFileError(
            f"{path} cannot be read as a pickled pair list ({type(e).__name__}: {e}); the file is "
            "truncated or not an insightface .bin. Copy it again."
        ) from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise PairFileError(
            f"{path} holds a {type(obj).__name__}, not a pair list (images, issame)."
        )
    images, issame = obj
    try:
        images = [_as_bytes(x) for x in images]
    except TypeError as e:
        raise PairFileError(
            f"{path}: the image list holds a {e}, not encoded image bytes."
        ) from None
    try:
        same = np.array([bool(_check_bool(x)) for x in issame], dtype=bool)
    except TypeError as e:
        raise PairFileError(f"{path}: the issame list holds a {e}, not booleans.") from None
    if len(images) % 2:
        raise PairFileError(
            f"{path} holds an odd number of images ({len(images)}); pairs need 2 per entry."
        )
    if len(images) != 2 * len(same):
        raise PairFileError(
            f"{path} holds {len(images)} images for {len(same)} pair labels; it needs exactly "
            "2 images per label."
        )
    return images, same


def _check_bool(x: Any) -> bool:
    if isinstance(x, (bool, np.bool_)) or (isinstance(x, (int, np.integer)) and x in (0, 1)):
        return bool(x)
    raise TypeError(type(x).__name__)


def write_pairs(path: str, images: Sequence[bytes], issame: Sequence[bool]) -> None:
    """Write a ``.bin`` pair file readable by insightface's and our readers (protocol 2)."""
    if len(images) != 2 * len(issame):
        raise ValueError(f"{len(images)} images for {len(issame)} pairs: need 2 per pair.")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(([bytes(b) for b in images], [bool(s) for s in issame]), f, protocol=2)
    os.replace(tmp, path)
