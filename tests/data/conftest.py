"""Fake dataset folders in each real layout, with a few tiny images and known statistics."""

from __future__ import annotations

import os
import warnings
from typing import Dict, Tuple

import numpy as np
import pytest
from PIL import Image

# name -> {split: (ids, images, cameras)} for the folders written by ``write_fake_datasets``.
Stats = Dict[str, Dict[str, Tuple[int, int, int]]]


@pytest.fixture(autouse=True)
def _quiet_torchvision_decoder_notice():
    """torchvision 0.29 deprecates its decoders (still the fast path); keep test output readable."""
    warnings.filterwarnings(
        "ignore", message="The image decoding and encoding", category=DeprecationWarning
    )
    yield


def write_image(path: str, seed: int = 0, size: Tuple[int, int] = (16, 8)) -> None:
    """A tiny random RGB image (height, width = size); format from the extension."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)


def _write_lines(path: str, lines) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _market_like(root: str, folder: str, name_fmt: str) -> None:
    # train: ids 2, 7 in cameras 1, 2 (4 images); query: ids 1 (c1), 3 (c2);
    # gallery: 1 (c2), 3 (c1), a distractor 0000 (c3) and a junk -1 (c1) that is dropped.
    files = {
        "bounding_box_train": [(2, 1), (2, 2), (7, 1), (7, 2)],
        "query": [(1, 1), (3, 2)],
        "bounding_box_test": [(1, 2), (3, 1), (0, 3), (-1, 1)],
    }
    for split, entries in files.items():
        for i, (pid, cam) in enumerate(entries):
            pid_str = "-1" if pid < 0 else f"{pid:04d}"
            write_image(os.path.join(root, folder, split, name_fmt.format(pid_str, cam, i)), i)


def write_fake_datasets(root: str) -> Stats:
    """Write every supported layout under ``root``; return the expected statistics."""
    stats: Stats = {}
    _market_like(root, "Market-1501-v15.09.15", "{}_c{}s1_00{}451_03.jpg")
    stats["Market1501"] = {"train": (2, 4, 2), "query": (2, 2, 2), "gallery": (3, 3, 3)}
    _market_like(root, "DukeMTMC-reID", "{}_c{}_f00{}6182.jpg")
    stats["DukeMTMC"] = stats["Market1501"]

    # MSMT17_V2: train list ids 0 (c1, c2) and 1 (c3); val adds one image of id 1 (c3).
    msmt = os.path.join(root, "MSMT17_V2")
    lists = {
        ("mask_train_v2", "train"): [(0, 1, 0), (0, 2, 1), (1, 3, 2)],
        ("mask_train_v2", "val"): [(1, 3, 3)],
        ("mask_test_v2", "query"): [(5, 1, 0), (6, 4, 1)],
        ("mask_test_v2", "gallery"): [(5, 2, 2), (6, 1, 3), (6, 15, 4)],
    }
    for (folder, name), entries in lists.items():
        lines = []
        for pid, cam, i in entries:
            rel = f"{pid:04d}/{pid:04d}_{i:03d}_{cam:02d}_0303morning_0015_0.jpg"
            write_image(os.path.join(msmt, folder, rel), i)
            lines.append(f"{rel} {pid}")
        _write_lines(os.path.join(msmt, f"list_{name}.txt"), lines)
    stats["MSMT17"] = {"train": (2, 4, 3), "query": (2, 2, 2), "gallery": (2, 3, 3)}

    # CUHK03 new protocol: train ids 1, 2; query/gallery ids 3, 4 (views 1 and 2).
    from scipy.io import savemat

    cuhk = os.path.join(root, "cuhk03")
    entries = [
        (1, 1, 1),
        (1, 2, 1),
        (2, 1, 2),
        (2, 2, 2),
        (3, 1, 3),
        (4, 1, 4),
        (3, 2, 3),
        (4, 2, 4),
    ]
    names = [f"1_{p:03d}_{v}_01.png" for p, v, _ in entries]
    for kind in ("labeled", "detected"):
        for i, name in enumerate(names):
            write_image(os.path.join(cuhk, f"images_{kind}", name), i)
        filelist = np.empty((len(names), 1), dtype=object)
        for i, name in enumerate(names):
            filelist[i, 0] = name
        savemat(
            os.path.join(cuhk, f"cuhk03_new_protocol_config_{kind}.mat"),
            {
                "filelist": filelist,
                "labels": np.array([[label] for *_, label in entries]),
                "train_idx": np.array([[1], [2], [3], [4]]),
                "query_idx": np.array([[5], [6]]),
                "gallery_idx": np.array([[7], [8]]),
            },
        )
    cuhk_stats = {"train": (2, 4, 2), "query": (2, 2, 1), "gallery": (2, 2, 1)}
    stats["CUHK03"] = stats["CUHK03Labeled"] = stats["CUHK03Detected"] = cuhk_stats

    # VeRi: train ids 1, 2 (c001, c002, c003); query id 3 (c004); gallery id 3 (c005, c006).
    veri = os.path.join(root, "veri")
    veri_files = {
        "image_train": [(1, 1), (1, 2), (2, 3)],
        "image_query": [(3, 4)],
        "image_test": [(3, 5), (3, 6)],
    }
    for folder, items in veri_files.items():
        for i, (pid, cam) in enumerate(items):
            write_image(os.path.join(veri, folder, f"{pid:04d}_c{cam:03d}_0001645{i}_0.jpg"), i)
    stats["VeRi"] = {"train": (2, 3, 3), "query": (1, 1, 1), "gallery": (1, 2, 2)}

    # VehicleID: train 2 vehicles x 2 images; test lists of growing size, 3 images per vehicle
    # (one goes to the gallery, two to the query); each image is its own camera.
    vid_root = os.path.join(root, "vehicleid")
    image_id = 0

    def vehicle_lines(vids, per_vehicle):
        nonlocal image_id
        lines = []
        for vid in vids:
            for _ in range(per_vehicle):
                image_id += 1
                write_image(os.path.join(vid_root, "image", f"{image_id:07d}.jpg"), image_id)
                lines.append(f"{image_id:07d} {vid}")
        return lines

    split = os.path.join(vid_root, "train_test_split")
    _write_lines(os.path.join(split, "train_list.txt"), vehicle_lines([1, 2], 2))
    for name, n in (("800", 1), ("1600", 2), ("2400", 3), ("13164", 4)):
        _write_lines(
            os.path.join(split, f"test_list_{name}.txt"), vehicle_lines(range(100, 100 + n), 3)
        )
        key = {"800": "Small", "1600": "Medium", "2400": "Large", "13164": ""}[name] + "VehicleID"
        stats[key] = {"train": (2, 4, 4), "query": (n, 2 * n, 2 * n), "gallery": (n, n, n)}

    # VERI-Wild: train vehicles 1, 2; test sets of 1/2/3 vehicles with 1 query + 2 gallery each.
    wild = os.path.join(root, "VERI-Wild")
    info = ["id/image;Camera ID;Time;Model;Type;Color"]
    counter = 0

    def wild_lines(vids, per_vehicle, cam_offset=0):
        nonlocal counter
        lines = []
        for vid in vids:
            for j in range(per_vehicle):
                counter += 1
                key = f"{vid:05d}/{counter:06d}"
                write_image(os.path.join(wild, "images", f"{key}.jpg"), counter)
                info.append(f"{key};{j + 1 + cam_offset};2018-03-11 11:00:00;Audi;SUV;white")
                lines.append(key)
        return lines

    wsplit = os.path.join(wild, "train_test_split")
    _write_lines(os.path.join(wsplit, "train_list.txt"), wild_lines([1, 2], 2))
    for size, n in (("3000", 1), ("5000", 2), ("10000", 3)):
        vids = range(10 * n, 10 * n + n)
        _write_lines(os.path.join(wsplit, f"test_{size}_query.txt"), wild_lines(vids, 1))
        _write_lines(os.path.join(wsplit, f"test_{size}.txt"), wild_lines(vids, 2, cam_offset=1))
        key = {"3000": "Small", "5000": "Medium", "10000": "Large"}[size] + "VeRiWild"
        stats[key] = {"train": (2, 4, 2), "query": (n, n, 1), "gallery": (n, 2 * n, 2)}
    stats["VeRiWild"] = stats["LargeVeRiWild"]
    _write_lines(os.path.join(wsplit, "vehicle_info.txt"), info)

    # Generic folder: train ids a, b (cameras from names); query/gallery id 0005 without cameras.
    custom = os.path.join(root, "custom")
    for rel in ("train/a/c1_0.jpg", "train/a/c2_1.jpg", "train/b/c1_2.jpg", "query/0005/x.jpg"):
        write_image(os.path.join(custom, rel))
    for rel in ("gallery/0005/y.jpg", "gallery/0005/z.jpg", "gallery/0009/w.jpg"):
        write_image(os.path.join(custom, rel))
    stats["ReIDFolder"] = {"train": (2, 3, 2), "query": (1, 1, 1), "gallery": (2, 3, 1)}
    return stats


@pytest.fixture
def fake_datasets(datasets_root) -> Tuple[str, Stats]:
    """(root, expected statistics) of fake folders for every registered real-data layout."""
    return str(datasets_root), write_fake_datasets(str(datasets_root))


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> str:
    """A tiny synthetic set (shared by the tests that only read it); returns the datasets root."""
    from fastreid.data.synthetic import generate_synthetic_dataset

    root = str(tmp_path_factory.mktemp("synthetic"))
    generate_synthetic_dataset(root, num_ids=12, seed=0, height=32, width=16)
    return root
