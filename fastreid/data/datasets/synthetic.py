"""The generated synthetic re-ID set (see :mod:`fastreid.data.synthetic`)."""

from __future__ import annotations

import json
import os
from typing import List

from .bases import Item
from .market1501 import MarketLayoutDataset
from .registry import DATASET_REGISTRY

# Where the generator (fastreid.data.synthetic) writes the set, inside the datasets root.
DATASET_FOLDER = "SyntheticReID"
ATTRIBUTES_FILE = "attributes.json"


@DATASET_REGISTRY.register()
class SyntheticReID(MarketLayoutDataset):
    """The synthetic set, parsed by the Market-1501 code; only the folder differs.

    Items carry a 4th element ``{"attributes": [0/1, ...]}`` (names in ``attribute_names``);
    distractors, whose attributes are unknown, get -1 everywhere.
    """

    dataset_name = "synthetic"
    folders = (DATASET_FOLDER,)
    layout = f"""\
<root>/{DATASET_FOLDER}/     (make it with: python -m fastreid.data.synthetic --output <root>)
    bounding_box_train/  query/  bounding_box_test/   Market-1501 file names
    {ATTRIBUTES_FILE}
"""

    def add_extras(self, train: List[Item], query: List[Item], gallery: List[Item]):
        path = os.path.join(self.data_dir, ATTRIBUTES_FILE)
        self.check_exists([path])
        with open(path) as f:
            content = json.load(f)
        self.attribute_names: List[str] = content["attribute_names"]
        table = {
            int(pid): [values[n] for n in self.attribute_names]
            for pid, values in content["identities"].items()
        }
        unknown = [-1] * len(self.attribute_names)

        def attach(items: List[Item]) -> List[Item]:
            return [(*item[:3], {"attributes": table.get(item[1], unknown)}) for item in items]

        return attach(train), attach(query), attach(gallery)
