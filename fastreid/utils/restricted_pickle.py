"""Read pickled data files without running code: a restricted unpickler.

Some data formats are pickles (insightface's verification ``.bin`` pair lists, FastReID's
cached dataset files). ``pickle.load`` on such a file can run any code its author chose,
so fastreid reads them with :func:`restricted_load`, which admits only plain data:
``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict`` and
numpy arrays / dtypes / scalars. Any other global named in the file is refused with a
:class:`UnsafePickleError` naming it; nothing from the file is executed.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import IO, Any, Union

from .errors import BadInputError

__all__ = ["UnsafePickleError", "restricted_load", "restricted_loads"]

# The only globals a plain-data pickle needs. Containers and scalars of the list above are
# pickle opcodes, not globals; numpy arrays are rebuilt by these functions of numpy's own.
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        # Protocol-2 pickles written by Python 3 encode bytes as _codecs.encode(text, "latin1").
        ("_codecs", "encode"),
    }
)
# numpy >= 2 writes numpy.dtypes.Float32DType etc. for dtypes.
_ALLOWED_MODULE_PREFIXES = ("numpy.dtypes",)


class UnsafePickleError(BadInputError, pickle.UnpicklingError):
    """A pickle that names a global outside the plain-data allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], source: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS or module.startswith(_ALLOWED_MODULE_PREFIXES):
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.source} is a pickle that refers to '{module}.{name}', which is not plain "
            "data (bytes, str, numbers, lists, tuples, dicts, numpy arrays); fastreid does not "
            "load it, because unpickling it could run code. Re-create the file from its "
            "original source, or convert it to plain data."
        )


def restricted_load(file: Union[str, os.PathLike, IO[bytes]], encoding: str = "bytes") -> Any:
    """Unpickle plain data from a path or a binary file object.

    Args:
        file: a path or an open binary file.
        encoding: how to decode Python 2 ``str`` objects (``"bytes"`` keeps them as bytes, as
            insightface's ``.bin`` files need).
    Raises:
        UnsafePickleError: the pickle names anything but plain data.
        FileNotFoundError: the path does not exist.
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            return _RestrictedUnpickler(handle, f"'{os.fspath(file)}'", encoding).load()
    name = getattr(file, "name", None)
    source = f"'{name}'" if isinstance(name, str) else "The data"
    return _RestrictedUnpickler(file, source, encoding).load()


def restricted_loads(data: bytes, encoding: str = "bytes") -> Any:
    """:func:`restricted_load` for a bytes object."""
    return _RestrictedUnpickler(io.BytesIO(data), "The data", encoding).load()
