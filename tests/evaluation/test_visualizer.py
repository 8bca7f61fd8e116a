"""Visualizer pictures from plain features (no model or dataset needed)."""

import cv2
import numpy as np

from fastreid.evaluation import visualizer


def _setup(tmp_path, num_query=4, num_gallery=12):
    rng = np.random.default_rng(0)
    q_pids, g_pids = np.arange(num_query) % 3, np.arange(num_gallery) % 3
    q_cams, g_cams = np.zeros(num_query, int), np.ones(num_gallery, int)
    centres = rng.normal(size=(3, 6))
    qf = (centres[q_pids] + 0.3 * rng.normal(size=(num_query, 6))).astype(np.float32)
    gf = (centres[g_pids] + 0.3 * rng.normal(size=(num_gallery, 6))).astype(np.float32)
    paths = []
    for i in range(num_query + num_gallery):
        path = tmp_path / f"img{i}.jpg"
        cv2.imwrite(str(path), np.full((32, 16, 3), 20 * i % 255, np.uint8))
        paths.append(str(path))
    return qf, gf, q_pids, g_pids, q_cams, g_cams, paths[:num_query], paths[num_query:]


def test_rank_lists_mark_true_matches():
    qf, gf, q_pids, g_pids, q_cams, g_cams, _, _ = _setup_noio()
    lists = visualizer.rank_lists(qf, gf, q_pids, g_pids, q_cams, g_cams, [0, 1], topk=4)
    for (index, dist, match), pid in zip(lists, q_pids[:2]):
        assert np.all(np.diff(dist) >= 0)
        np.testing.assert_array_equal(match, g_pids[index] == pid)


def _setup_noio():
    rng = np.random.default_rng(0)
    q_pids, g_pids = np.arange(4) % 3, np.arange(12) % 3
    qf = rng.normal(size=(4, 6)).astype(np.float32)
    gf = rng.normal(size=(12, 6)).astype(np.float32)
    return qf, gf, q_pids, g_pids, np.zeros(4, int), np.ones(12, int), None, None


def test_pictures_are_written(tmp_path):
    qf, gf, q_pids, g_pids, q_cams, g_cams, q_paths, g_paths = _setup(tmp_path)
    out = tmp_path / "vis"
    written = visualizer.save_rank_lists(
        qf, gf, q_pids, g_pids, q_cams, g_cams, q_paths, g_paths, str(out),
        num_queries=2, topk=5, order="worst",
    )  # fmt: skip
    positive, negative = visualizer.pair_distances(qf, gf, q_pids, g_pids, q_cams, g_cams)
    assert len(positive) == 16 and len(negative) == 32
    written.append(visualizer.plot_roc(positive, negative, str(out / "roc.png")))
    written.append(visualizer.plot_distance_histograms(positive, negative, str(out / "h.png")))
    for path in written:
        image = cv2.imread(path)
        assert image is not None and image.shape[0] > 50
    # A rank list has green (true) and red (false) borders in it.
    image = cv2.imread(written[0])[..., ::-1].reshape(-1, 3).astype(int)
    assert ((image[:, 1] > 150) & (image[:, 0] < 60)).any()
    assert ((image[:, 0] > 180) & (image[:, 1] < 60)).any()
