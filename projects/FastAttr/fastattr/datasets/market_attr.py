"""Market1501-attribute and DukeMTMC-attribute: per-identity labels in a ``.mat`` file beside a
Market-layout image folder; and the synthetic set read through the same code."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Tuple

import numpy as np

from fastreid.data.datasets import DATASET_REGISTRY, parse_market_folder, resolve_datasets_root
from fastreid.data.datasets.bases import Item
from fastreid.data.datasets.synthetic import ATTRIBUTES_FILE
from fastreid.data.synthetic import write_attribute_files
from fastreid.utils.errors import BadInputError

from . import synthetic_mat  # noqa: F401  (registers market_attribute.mat with the generator)
from .bases import AttrDataset, attribute_item

__all__ = [
    "AttributeFileError",
    "MULTI_CLASS_FIELDS",
    "MULTI_CLASS_LAYOUTS",
    "read_identity_attributes",
    "MarketAttrLayout",
    "Market1501Attr",
    "DukeMTMCAttr",
    "SyntheticAttr",
]

# Fields annotated with more than two values (1..K): each becomes K one-hot binary attributes
# named ``<field>_<class>``, so every BCE target stays in {0, 1}.
MULTI_CLASS_FIELDS: Dict[str, Tuple[str, ...]] = {
    "age": ("young", "teenager", "adult", "old"),  # Market1501-attribute: 1..4
}

IdentityTable = Tuple[List[str], Dict[int, List[float]]]


def _struct_fields(value: np.ndarray) -> Dict[str, np.ndarray]:
    """The fields of a MATLAB struct as scipy loads it (a (1, 1) record array)."""
    record = np.asarray(value).reshape(-1)[0]
    return {name: record[name] for name in record.dtype.names}


def _index_strings(value: np.ndarray) -> List[str]:
    """``image_index``: a cell array of strings (each a 1-element char array)."""
    out = []
    for cell in np.asarray(value, dtype=object).reshape(-1):
        cell = np.asarray(cell).reshape(-1)
        out.append(str(cell[0]) if cell.size else "")
    return out


class AttributeFileError(BadInputError, ValueError):
    """An attribute ``.mat`` file whose content does not fit the layout (named in the text)."""


MULTI_CLASS_LAYOUTS = ("one_hot", "fastreid")


def read_identity_attributes(
    path: str, struct_name: str, multi_class: str = "one_hot"
) -> Dict[str, IdentityTable]:
    """Read a Market1501/DukeMTMC-attribute ``.mat`` file.

    The file holds a struct ``struct_name`` with ``train`` and ``test`` structs; each has
    ``image_index`` (the zero-padded identity of each column) and one ``1 x n`` row per
    attribute field with values 1/2 (no/yes, or the field's two classes) or, for the fields of
    :data:`MULTI_CLASS_FIELDS`, 1..K.

    Returns ``{"train": (names, {pid: vector}), "test": ...}``: fields in alphabetical order
    (FastReID's order), binary fields as ``value - 1``, multi-class fields one-hot
    (``multi_class="one_hot"``) or, with ``"fastreid"``, one output as FastReID has (27 on
    Market1501-attribute): 0 for the first class, 1 for any other.
    """
    if multi_class not in MULTI_CLASS_LAYOUTS:
        raise BadInputError(
            f"DATASETS.ATTR_MULTI_CLASS is '{multi_class}'; choose one of {MULTI_CLASS_LAYOUTS}."
        )
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as error:  # noqa: BLE001 - scipy raises several types for a bad file
        raise ValueError(f"Cannot read the attribute file {path}: {error}") from error
    if struct_name not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise KeyError(
            f"{path} has no '{struct_name}' struct (found {found}); is it the right "
            "attribute file for this dataset?"
        )
    splits = _struct_fields(mat[struct_name])
    tables: Dict[str, IdentityTable] = {}
    for split in ("train", "test"):
        if split not in splits:
            raise KeyError(f"{path}: '{struct_name}' has no '{split}' part (has {sorted(splits)}).")
        fields = _struct_fields(splits[split])
        if "image_index" not in fields:
            raise KeyError(f"{path}: '{struct_name}.{split}' has no 'image_index' field.")
        where = f"{path}: '{struct_name}.{split}"
        pids = []
        for pos, text in enumerate(_index_strings(fields.pop("image_index"))):
            try:
                pids.append(int(text))
            except ValueError:
                raise AttributeFileError(
                    f"{where}.image_index' entry {pos} is {text!r}, not an identity number "
                    "(zero-padded digits such as '0002'). Use the dataset's own attribute file."
                ) from None
        names: List[str] = []
        columns: List[np.ndarray] = []
        for field in sorted(fields):
            try:
                values = np.asarray(fields[field], dtype=np.float64).reshape(-1)
            except (ValueError, TypeError):
                raise AttributeFileError(
                    f"{where}.{field}' is not a row of numbers (it holds "
                    f"{np.asarray(fields[field]).dtype} data, e.g. text); every attribute field "
                    "must be a 1 x n row of numbers. Use the dataset's own attribute file."
                ) from None
            if values.size != len(pids):
                raise ValueError(
                    f"{path}: '{split}.{field}' has {values.size} values for "
                    f"{len(pids)} identities in image_index."
                )
            classes = MULTI_CLASS_FIELDS.get(field)
            allowed = range(1, len(classes) + 1) if classes else (1, 2)
            bad = sorted(set(values.tolist()) - set(allowed))
            if bad:
                raise ValueError(
                    f"{path}: '{split}.{field}' has values {bad[:5]}; expected "
                    f"{list(allowed)} (binary fields are 1/2, multi-class fields 1..K)."
                )
            if classes and multi_class == "fastreid":
                # FastReID's layout keeps the field as one output; its labels (value - 1,
                # 0..K-1) are no BCE targets, so the target is "above the first class".
                classes = None
                values = np.where(values > 1, 2.0, values)
            if classes:
                for k, name in enumerate(classes, start=1):
                    names.append(f"{field}_{name}")
                    columns.append((values == k).astype(np.float32))
            else:
                names.append(field)
                columns.append((values - 1).astype(np.float32))
        matrix = np.stack(columns, axis=1) if columns else np.zeros((len(pids), 0), np.float32)
        tables[split] = (names, {pid: matrix[i].tolist() for i, pid in enumerate(pids)})
    if tables["train"][0] != tables["test"][0]:
        raise ValueError(f"{path}: the train and test parts have different attribute fields.")
    return tables


class MarketAttrLayout(AttrDataset):
    """Images in Market layout (``bounding_box_train``, ``bounding_box_test``) labelled per
    identity by a ``.mat`` file in the same folder. Training reads ``bounding_box_train``;
    the test (= val) split is ``bounding_box_test`` without distractors (0) and junk (-1).

    Subclasses name ``folders`` (the first that exists wins), ``attribute_file`` and
    ``struct_name``.
    """

    folders: Tuple[str, ...] = ()
    attribute_file = ""
    struct_name = ""

    def __init__(
        self,
        root: str = "",
        combineall: bool = False,
        verbose: bool = True,
        multi_class: str = "one_hot",
    ) -> None:
        self.root = resolve_datasets_root(root)
        self.data_dir = next(
            (
                os.path.join(self.root, f)
                for f in self.folders
                if os.path.isdir(os.path.join(self.root, f))
            ),
            os.path.join(self.root, self.folders[0]),
        )
        train_dir = os.path.join(self.data_dir, "bounding_box_train")
        test_dir = os.path.join(self.data_dir, "bounding_box_test")
        mat_path = os.path.join(self.data_dir, self.attribute_file)
        self.check_exists([train_dir, test_dir, mat_path], folder=self.data_dir)
        tables = read_identity_attributes(mat_path, self.struct_name, multi_class)
        train = self._label(train_dir, tables["train"], "train", mat_path)
        test = self._label(test_dir, tables["test"], "test", mat_path)
        super().__init__(tables["train"][0], train, test, combineall=combineall, verbose=verbose)

    @staticmethod
    def _label(folder: str, table: IdentityTable, split: str, mat_path: str) -> List[Item]:
        items = parse_market_folder(folder, keep_distractors=False)
        labels = table[1]
        missing = sorted({pid for _, pid, _ in items if pid not in labels})
        if missing:
            shown = ", ".join(f"{p:04d}" for p in missing[:5])
            raise ValueError(
                f"The attribute file {mat_path} does not match the images in {folder}: "
                f"{len(missing)} identities there have no '{split}' attributes (e.g. {shown}). "
                "Use the attribute file that belongs to this copy of the dataset."
            )
        if not items:
            raise ValueError(f"{folder} holds no Market-named images (PPPP_cC...jpg).")
        return [attribute_item(path, labels[pid]) for path, pid, _ in items]


@DATASET_REGISTRY.register()
class Market1501Attr(MarketAttrLayout):
    """Market1501-attribute (Lin et al. 2019): 27 identity-level fields; the 4-class ``age``
    becomes ``age_young/teenager/adult/old``, so 30 binary attributes (27 with
    ``DATASETS.ATTR_MULTI_CLASS fastreid``, FastReID's layout)."""

    dataset_name = "market1501attr"
    folders = ("Market-1501-v15.09.15", "Market-1501", "market1501")
    attribute_file = "market_attribute.mat"
    struct_name = "market_attribute"
    layout = """\
<root>/Market-1501-v15.09.15/
    bounding_box_train/  bounding_box_test/   Market-1501 images
    market_attribute.mat                      Market1501-attribute labels (per identity)
"""


@DATASET_REGISTRY.register()
class DukeMTMCAttr(MarketAttrLayout):
    """DukeMTMC-attribute (Lin et al. 2019): 23 binary identity-level attributes."""

    dataset_name = "dukemtmcattr"
    folders = ("DukeMTMC-reID",)
    attribute_file = "duke_attribute.mat"
    struct_name = "duke_attribute"
    layout = """\
<root>/DukeMTMC-reID/
    bounding_box_train/  bounding_box_test/   DukeMTMC-reID images
    duke_attribute.mat                        DukeMTMC-attribute labels (per identity)
"""


@DATASET_REGISTRY.register()
class SyntheticAttr(Market1501Attr):
    """The generated synthetic set's attributes, read from its ``market_attribute.mat`` by the
    Market1501-attribute reader (27 binary attributes the generator paints)."""

    dataset_name = "syntheticattr"
    folders = ("SyntheticReID",)
    layout = """\
<root>/SyntheticReID/   (make it with: python -m fastreid.data.synthetic --output <root>)
    bounding_box_train/  bounding_box_test/
    market_attribute.mat
"""

    def __init__(self, root: str = "", **kwargs: Any) -> None:
        folder = os.path.join(resolve_datasets_root(root), self.folders[0])
        if os.path.isfile(os.path.join(folder, ATTRIBUTES_FILE)):
            write_attribute_files(folder)  # a set generated before the writer was registered
        super().__init__(root, **kwargs)  # the Market1501-attribute reader's options
