"""The synthetic set's attributes as Market1501-attribute's ``market_attribute.mat``.

Importing this module registers the writer with the core generator
(``fastreid.data.synthetic.register_attribute_writer``), so every synthetic set carries the
file :class:`~.market_attr.SyntheticAttr` reads through the Market1501-attribute reader.
"""

from __future__ import annotations

import io
from typing import Dict, List, Tuple

import numpy as np

from fastreid.data.synthetic import register_attribute_writer
from fastreid.data.synthetic.reid import COLOR_NAMES

__all__ = ["MARKET_ATTRIBUTE_FILE", "MARKET_FIELDS", "write_market_attribute_mat"]

# Market1501-attribute field of each generated attribute, and the value that field takes when
# the attribute is present (Market codes binary fields as 1 = no, 2 = yes; for ``hair``, ``up``,
# ``down`` and ``clothes`` the two values mean short/long hair, long/short sleeves, long/short
# lower-body clothing and dress/pants). Colors and patterns Market lacks keep Market's naming.
MARKET_FIELDS: Dict[str, Tuple[str, int]] = {
    "hat": ("hat", 2),
    "backpack": ("backpack", 2),
    "handbag": ("handbag", 2),
    "long_hair": ("hair", 2),
    "short_sleeve": ("up", 2),
    "lower_short": ("down", 2),
    "skirt": ("clothes", 1),
    "upper_striped": ("upstriped", 2),
    "upper_checked": ("upchecked", 2),
    "logo": ("logo", 2),
    **{f"upper_{c}": (f"up{c}", 2) for c in COLOR_NAMES},
    **{f"lower_{c}": (f"down{c}", 2) for c in COLOR_NAMES},
}
MARKET_ATTRIBUTE_FILE = "market_attribute.mat"
_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by fastreid.data.synthetic"
_MAT_HEADER_BYTES = 116


def write_market_attribute_mat(
    path: str, attributes: Dict[int, Dict[str, int]], train_pids: List[int], test_pids: List[int]
) -> None:
    """Write per-identity attributes as Market1501-attribute's ``market_attribute.mat``.

    The file holds a struct ``market_attribute`` with ``train`` and ``test`` structs; each has
    one 1 x n row per attribute field (values 1/2, see :data:`MARKET_FIELDS`) and
    ``image_index``, the zero-padded identity of each column.
    """
    from scipy.io import savemat

    def split(pids: List[int]) -> Dict[str, np.ndarray]:
        fields: Dict[str, np.ndarray] = {}
        for name, (field, present) in MARKET_FIELDS.items():
            absent = 3 - present
            fields[field] = np.array(
                [[present if attributes[p][name] else absent for p in pids]], dtype=np.float64
            )
        index = np.empty((1, len(pids)), dtype=object)
        index[0, :] = [f"{p:04d}" for p in pids]
        fields["image_index"] = index
        return fields

    buffer = io.BytesIO()
    savemat(buffer, {"market_attribute": {"train": split(train_pids), "test": split(test_pids)}})
    data = bytearray(buffer.getvalue())
    # savemat stamps the time into the 116-byte header text; a fixed text keeps the file the
    # same for the same seed.
    data[:_MAT_HEADER_BYTES] = _MAT_HEADER.ljust(_MAT_HEADER_BYTES, b" ")
    with open(path, "wb") as f:
        f.write(bytes(data))


register_attribute_writer(MARKET_ATTRIBUTE_FILE, write_market_attribute_mat)
