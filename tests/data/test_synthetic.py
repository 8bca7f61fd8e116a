"""The synthetic set: deterministic, Market layout, junk/distractors, attributes."""

from __future__ import annotations

import hashlib
import json
import os

from fastreid.data.datasets import DATASET_REGISTRY, MarketLayoutDataset, parse_market_folder
from fastreid.data.synthetic import (
    ATTRIBUTE_NAMES,
    ensure_synthetic_dataset,
    generate_synthetic_dataset,
    main,
)


def _digest(folder: str) -> str:
    sha = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            sha.update(name.encode())
            with open(os.path.join(dirpath, name), "rb") as f:
                sha.update(f.read())
    return sha.hexdigest()


def test_same_seed_gives_identical_files(tmp_path):
    a = generate_synthetic_dataset(str(tmp_path / "a"), num_ids=6, seed=3, height=32, width=16)
    b = generate_synthetic_dataset(str(tmp_path / "b"), num_ids=6, seed=3, height=32, width=16)
    assert _digest(a) == _digest(b)


def test_other_seed_gives_other_files(tmp_path):
    a = generate_synthetic_dataset(str(tmp_path / "a"), num_ids=6, seed=3, height=32, width=16)
    b = generate_synthetic_dataset(str(tmp_path / "b"), num_ids=6, seed=4, height=32, width=16)
    assert _digest(a) != _digest(b)


def test_market_layout_and_file_names(tiny_synthetic):
    folder = os.path.join(tiny_synthetic, "SyntheticReID")
    assert {"bounding_box_train", "query", "bounding_box_test", "attributes.json"} <= set(
        os.listdir(folder)
    )
    name = sorted(os.listdir(os.path.join(folder, "query")))[0]
    pid, cam_seq, frame, box = name[:-4].split("_")
    assert len(pid) == 4 and cam_seq[0] == "c" and "s" in cam_seq
    assert len(frame) == 6 and len(box) == 2 and name.endswith(".jpg")


def test_gallery_has_junk_and_distractors_on_disk(tiny_synthetic):
    names = os.listdir(os.path.join(tiny_synthetic, "SyntheticReID", "bounding_box_test"))
    assert any(n.startswith("-1_") for n in names)
    assert any(n.startswith("0000_") for n in names)


def test_loads_through_market_parsing(tiny_synthetic):
    dataset = DATASET_REGISTRY.get("SyntheticReID")(root=tiny_synthetic, verbose=False)
    assert isinstance(dataset, MarketLayoutDataset)
    gallery_dir = os.path.join(tiny_synthetic, "SyntheticReID", "bounding_box_test")
    parsed = parse_market_folder(gallery_dir)
    assert [item[:3] for item in dataset.gallery] == parsed
    assert 0 in {item[1] for item in dataset.gallery}  # distractors kept, junk dropped
    assert -1 not in {item[1] for item in dataset.gallery}


def test_train_and_test_identities_are_disjoint_and_queries_have_matches(tiny_synthetic):
    dataset = DATASET_REGISTRY.get("SyntheticReID")(root=tiny_synthetic, verbose=False)
    train_ids = {int(item[1].split("_")[1]) for item in dataset.train}
    query_ids = {item[1] for item in dataset.query}
    assert not train_ids & query_ids
    for _, pid, camid, _ in dataset.query:
        assert any(g[1] == pid and g[2] != camid for g in dataset.gallery)


def test_items_carry_attributes(tiny_synthetic):
    dataset = DATASET_REGISTRY.get("SyntheticReID")(root=tiny_synthetic, verbose=False)
    extras = dataset.train[0][3]
    assert dataset.attribute_names == ATTRIBUTE_NAMES
    assert len(extras["attributes"]) == len(ATTRIBUTE_NAMES)
    assert set(extras["attributes"]) <= {0, 1}
    with open(os.path.join(tiny_synthetic, "SyntheticReID", "attributes.json")) as f:
        table = json.load(f)["identities"]
    assert len(table) == 12


def test_ensure_generates_only_when_missing(tmp_path):
    path = ensure_synthetic_dataset(str(tmp_path), num_ids=4, height=32, width=16)
    marker = os.path.join(path, "attributes.json")
    before = os.stat(marker).st_mtime_ns
    assert ensure_synthetic_dataset(str(tmp_path), num_ids=4, height=32, width=16) == path
    assert os.stat(marker).st_mtime_ns == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".synthetic-")]


def test_command_line_writes_requested_size(tmp_path, capsys):
    main(
        [
            "--output",
            str(tmp_path),
            "--num-ids",
            "4",
            "--seed",
            "1",
            "--height",
            "32",
            "--width",
            "16",
        ]
    )
    query = os.listdir(tmp_path / "SyntheticReID" / "query")
    assert len({n[:4] for n in query}) == 2  # half of the ids are test ids
    assert "Wrote" in capsys.readouterr().out


def test_registered_attribute_writers_get_every_set_and_complete_old_ones(tmp_path, monkeypatch):
    from fastreid.data import synthetic

    calls = []

    def write_csv(path, attributes, train_pids, test_pids):
        calls.append(path)
        with open(path, "w") as f:
            for pid in train_pids + test_pids:
                f.write(f"{pid},{attributes[pid]['hat']}\n")

    monkeypatch.setattr(synthetic.reid, "ATTRIBUTE_WRITERS", {})
    folder = generate_synthetic_dataset(str(tmp_path), num_ids=6, seed=2, height=32, width=16)
    assert sorted(os.listdir(folder)) == [
        "attributes.json", "bounding_box_test", "bounding_box_train", "query"
    ]  # fmt: skip
    # Registered later: ensure_synthetic_dataset adds the file from attributes.json, once.
    synthetic.register_attribute_writer("hat.csv", write_csv)
    assert ensure_synthetic_dataset(str(tmp_path)) == folder
    assert ensure_synthetic_dataset(str(tmp_path)) == folder and len(calls) == 1
    with open(os.path.join(folder, "attributes.json")) as f:
        table = json.load(f)["identities"]
    rows = open(os.path.join(folder, "hat.csv")).read().split()
    assert rows == [f"{int(p)},{table[p]['hat']}" for p in sorted(table)]  # train ids first
    assert not [n for n in os.listdir(folder) if ".tmp" in n]
    # A new set carries it from the start, with the same content for the same seed.
    again = generate_synthetic_dataset(str(tmp_path / "b"), num_ids=6, seed=2, height=32, width=16)
    assert open(os.path.join(again, "hat.csv")).read().split() == rows
