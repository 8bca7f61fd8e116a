"""MXNet RecordIO (``.rec`` + ``.idx``) without mxnet: the format of insightface's
``train.rec``.

A ``.rec`` file is a sequence of records. Each record (or record part) is::

    uint32 magic 0xCED7230A | uint32 lrec | payload | zero padding to 4 bytes

with ``lrec = cflag << 29 | length``. ``cflag`` is 0 for a whole record; a payload that
contains the magic word at a 4-byte-aligned position is split there into parts with cflag
1 (first), 2 (middle), 3 (last), and the reader puts the magic word back between them.
The ``.idx`` file is text, one ``key<TAB>byte offset`` line per record.

A record's payload (``mx.recordio.pack``) starts with a 24-byte header ``IfQQ``:
``flag`` (uint32), ``label`` (float32), ``id``, ``id2`` (uint64). When ``flag > 0`` the label
is an array of ``flag`` float32 values stored right after the header (and ``label`` is 0).
The rest is the image file (JPEG/PNG bytes).

insightface layout: record 0 has the label ``(first_identity_record, end)``; the images are
records ``1 .. first_identity_record - 1`` with the class id as label; the identity records
``first_identity_record .. end - 1`` hold the image range ``(start, stop)`` of each class, so
the class count is ``end - first_identity_record``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from fastreid.utils.errors import BadInputError

__all__ = [
    "RecordIOError",
    "RecordHeader",
    "pack_record",
    "unpack_record",
    "RecordWriter",
    "RecordReader",
    "write_face_rec",
    "FaceRecIndex",
]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEADER = struct.Struct("<IfQQ")
_LREC = struct.Struct("<II")
_LEN_MASK = (1 << 29) - 1


class RecordIOError(BadInputError, ValueError):
    """A ``.rec`` / ``.idx`` pair that is truncated, corrupt or inconsistent."""


@dataclass
class RecordHeader:
    """The ``IfQQ`` header of a packed record; ``label`` is a float or a float32 array."""

    flag: int
    label: Union[float, np.ndarray]
    id: int = 0
    id2: int = 0


def pack_record(label: Union[float, Sequence[float]], payload: bytes, rec_id: int = 0) -> bytes:
    """``mx.recordio.pack``: header (+ label array) + payload."""
    if np.isscalar(label):
        return _HEADER.pack(0, float(label), rec_id, 0) + payload
    array = np.asarray(label, dtype=np.float32).reshape(-1)
    return _HEADER.pack(array.size, 0.0, rec_id, 0) + array.tobytes() + payload


def unpack_record(data: bytes, where: str = "record") -> Tuple[RecordHeader, bytes]:
    """``mx.recordio.unpack``: ``(header, payload)``."""
    if len(data) < _HEADER.size:
        raise RecordIOError(f"{where} is {len(data)} bytes, shorter than its 24-byte header.")
    flag, label, rec_id, id2 = _HEADER.unpack_from(data)
    body = data[_HEADER.size :]
    if flag > 0:
        if len(body) < 4 * flag:
            raise RecordIOError(f"{where} announces {flag} labels but holds {len(body)} bytes.")
        labels = np.frombuffer(body[: 4 * flag], dtype=np.float32).copy()
        return RecordHeader(flag, labels, rec_id, id2), body[4 * flag :]
    return RecordHeader(0, float(label), rec_id, id2), body


class RecordWriter:
    """Write an indexed RecordIO pair (``MXIndexedRecordIO(idx, rec, 'w')``).

    Use as a context manager; ``write(key, payload)`` appends one record and its index line.
    """

    def __init__(self, rec_path: str, idx_path: Optional[str] = None) -> None:
        self.rec_path = rec_path
        self.idx_path = idx_path or os.path.splitext(rec_path)[0] + ".idx"
        self._rec = open(rec_path, "wb")
        self._idx = open(self.idx_path, "w", encoding="ascii")

    def write(self, key: int, payload: bytes) -> None:
        self._idx.write(f"{int(key)}\t{self._rec.tell()}\n")
        self._write_parts(payload)

    def _write_parts(self, payload: bytes) -> None:
        # Split at every 4-byte-aligned occurrence of the magic word (dmlc's writer does the same).
        start = 0
        aligned = len(payload) // 4 * 4
        pos = payload.find(_MAGIC_BYTES)
        while pos != -1 and pos < aligned:
            if pos % 4 == 0:
                cflag = 1 if start == 0 else 2
                self._rec.write(_LREC.pack(MAGIC, (cflag << 29) | (pos - start)))
                self._rec.write(payload[start:pos])
                start = pos + 4
            pos = payload.find(_MAGIC_BYTES, pos + 1)
        cflag = 3 if start else 0
        self._rec.write(_LREC.pack(MAGIC, (cflag << 29) | (len(payload) - start)))
        self._rec.write(payload[start:])
        self._rec.write(b"\0" * (-len(payload) % 4))

    def close(self) -> None:
        self._rec.close()
        self._idx.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_index(idx_path: str, rec_size: int) -> Dict[int, int]:
    if not os.path.isfile(idx_path):
        raise FileNotFoundError(
            f"RecordIO index {idx_path} not found; it must sit beside the .rec file with the "
            ".idx extension (insightface ships train.rec with train.idx)."
        )
    offsets: Dict[int, int] = {}
    with open(idx_path, "rb") as f:
        raw = f.read()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        raise RecordIOError(
            f"{idx_path} is truncated: its last line '{lines[-1][:40]!r}' has no newline. "
            "Copy the .idx file again (or rebuild it from the .rec)."
        )
    for number, line in enumerate(lines, 1):
        parts = line.split(b"\t")
        try:
            key, offset = int(parts[0]), int(parts[1])
            if len(parts) != 2:
                raise ValueError
        except (ValueError, IndexError):
            raise RecordIOError(
                f"{idx_path} line {number} is {line[:60]!r}, not 'key<TAB>offset'; the index is "
                "corrupt. Copy it again."
            ) from None
        if not 0 <= offset < rec_size:
            raise RecordIOError(
                f"{idx_path} line {number} points at byte {offset}, but the .rec file has "
                f"{rec_size} bytes: the .rec is truncated or belongs to another index."
            )
        offsets[key] = offset
    if not offsets:
        raise RecordIOError(f"{idx_path} is empty; copy the index again.")
    return offsets


class RecordReader:
    """Random access to an indexed RecordIO pair (``MXIndexedRecordIO(idx, rec, 'r')``).

    The file is opened lazily in each process (safe with DataLoader workers).
    """

    def __init__(self, rec_path: str, idx_path: Optional[str] = None) -> None:
        if not os.path.isfile(rec_path):
            raise FileNotFoundError(
                f"RecordIO file {rec_path} not found; set DATASETS.REC_PATH to an insightface "
                "train.rec (with train.idx beside it)."
            )
        self.rec_path = rec_path
        self.idx_path = idx_path or os.path.splitext(rec_path)[0] + ".idx"
        self.rec_size = os.path.getsize(rec_path)
        self.offsets = _read_index(self.idx_path, self.rec_size)
        self._file: Optional[BinaryIO] = None
        self._pid = -1

    def keys(self) -> List[int]:
        return sorted(self.offsets)

    def _handle(self) -> BinaryIO:
        if self._file is None or self._pid != os.getpid():
            self._file = open(self.rec_path, "rb")
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, -1
        return state

    def _read_exact(self, f: BinaryIO, n: int, key: int, offset: int) -> bytes:
        data = f.read(n)
        if len(data) != n:
            raise RecordIOError(
                f"{self.rec_path} is truncated: record {key} (at byte {offset}) needs {n} more "
                f"bytes, the file ends after {len(data)}. Copy the .rec file again."
            )
        return data

    def read(self, key: int) -> bytes:
        """The raw payload of record ``key`` (parts joined)."""
        if key not in self.offsets:
            raise KeyError(f"Record {key} is not in {self.idx_path}.")
        offset = self.offsets[key]
        f = self._handle()
        f.seek(offset)
        chunks: List[bytes] = []
        while True:
            magic, lrec = _LREC.unpack(self._read_exact(f, 8, key, offset))
            if magic != MAGIC:
                raise RecordIOError(
                    f"{self.rec_path}: no record starts at byte {f.tell() - 8} (record {key}); "
                    "the .rec and .idx files do not match or the .rec is corrupt."
                )
            cflag, length = lrec >> 29, lrec & _LEN_MASK
            chunks.append(self._read_exact(f, length, key, offset))
            if cflag in (0, 3):
                f.read(-length % 4)
                return b"".join(chunks)
            chunks.append(_MAGIC_BYTES)  # the split point held the magic word

    def read_header(self, key: int) -> RecordHeader:
        """Only the header of record ``key`` (reads the first part)."""
        return unpack_record(self.read(key), f"{self.rec_path} record {key}")[0]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def write_face_rec(rec_path: str, images: Iterable[Tuple[int, bytes]]) -> Tuple[int, int]:
    """Write an insightface training ``.rec``/``.idx`` from ``(class_id, encoded image)`` pairs
    (class ids 0..C-1, images grouped by class). Returns ``(num_images, num_classes)``."""
    items = sorted(((int(c), i, data) for i, (c, data) in enumerate(images)), key=lambda t: t[:2])
    classes = sorted({c for c, _, _ in items})
    if classes != list(range(len(classes))):
        raise ValueError("write_face_rec needs class ids 0..C-1 without gaps.")
    first_identity = len(items) + 1
    end = first_identity + len(classes)
    ranges: Dict[int, List[int]] = {}
    with RecordWriter(rec_path) as writer:
        writer.write(0, pack_record([first_identity, end], b""))
        for key, (cls, _, data) in enumerate(items, 1):
            ranges.setdefault(cls, [key, key])[1] = key + 1
            writer.write(key, pack_record(float(cls), data, rec_id=key))
        for cls in classes:
            writer.write(first_identity + cls, pack_record(ranges[cls], b""))
    return len(items), len(classes)


class FaceRecIndex:
    """The images and class count of an insightface ``.rec`` (see the module docstring).

    When record 0 has no label array (``flag == 0``; FastReID crashes there), every record is
    an image and the classes are counted from the image labels.
    """

    def __init__(self, rec_path: str) -> None:
        self.reader = RecordReader(rec_path)
        header0 = self.reader.read_header(0) if 0 in self.reader.offsets else None
        if header0 is not None and header0.flag > 0:
            labels = np.asarray(header0.label)
            if labels.size < 2:
                raise RecordIOError(
                    f"{rec_path}: record 0 has {labels.size} label value(s); insightface's "
                    "header holds (first identity record, end)."
                )
            first_identity, end = int(labels[0]), int(labels[1])
            self.image_keys = list(range(1, first_identity))
            missing = [k for k in self.image_keys if k not in self.reader.offsets]
            if missing:
                raise RecordIOError(
                    f"{self.reader.idx_path} lacks {len(missing)} image records (e.g. {missing[0]}) "
                    f"that the header of {rec_path} announces (1..{first_identity - 1}): the index "
                    "is truncated. Copy it again."
                )
            self.num_classes = end - first_identity
            self.labels: Optional[List[int]] = None
        else:
            self.image_keys = [k for k in self.reader.keys() if k != 0 or header0 is not None]
            self.labels = [self._label(self.reader.read_header(k)) for k in self.image_keys]
            self.num_classes = len(set(self.labels))

    @staticmethod
    def _label(header: RecordHeader) -> int:
        label = header.label
        return int(label if np.isscalar(label) else np.asarray(label).reshape(-1)[0])

    def __len__(self) -> int:
        return len(self.image_keys)

    def sample(self, index: int) -> Tuple[RecordHeader, bytes, int]:
        """``(header, image bytes, class id)`` of the ``index``-th image."""
        key = self.image_keys[index]
        header, payload = unpack_record(
            self.reader.read(key), f"{self.reader.rec_path} record {key}"
        )
        return header, payload, self._label(header)
