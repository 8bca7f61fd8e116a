"""ROC and histogram titles, and FastReID's --vis-label row of true matches."""

from __future__ import annotations

import numpy as np
import pytest

from fastreid.evaluation import visualizer

from .test_visualizer import _setup


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the visualizer saves, kept open for inspection."""
    saved = []
    real = visualizer.save_figure

    def keep(fig, path):
        saved.append(
            {
                "titles": [ax.get_title() for ax in fig.axes],
                "suptitle": fig._suptitle.get_text() if fig._suptitle else "",
                "shape": fig.axes[0].get_subplotspec().get_gridspec().get_geometry(),
                "axes": fig.axes,
            }
        )
        return real(fig, path)

    monkeypatch.setattr(visualizer, "save_figure", keep)
    return saved


def test_roc_and_histograms_have_titles(tmp_path, figures):
    positive = np.array([0.1, 0.2, 0.3])
    negative = np.array([0.5, 0.6, 0.7, 0.8])
    visualizer.plot_roc(positive, negative, str(tmp_path / "roc.png"), title="ROC on SetA")
    visualizer.plot_distance_histograms(positive, negative, str(tmp_path / "h.png"))
    roc, hist = figures
    assert roc["titles"][0] == "ROC on SetA\n3 genuine, 4 impostor pairs"
    assert hist["titles"][0].startswith("Distances of genuine and impostor pairs\n3 genuine")


def _reference_true_matches(qf, gf, q_pids, g_pids, q_cams, g_cams, i, topk, label_sort):
    """Plain loop: every kept same-identity gallery image, by cosine similarity."""
    found = []
    for j in range(len(gf)):
        if g_pids[j] != q_pids[i] or g_cams[j] == q_cams[i]:
            continue
        cos = float(qf[i] @ gf[j] / np.linalg.norm(qf[i]) / np.linalg.norm(gf[j]))
        found.append((cos, j))
    found.sort(reverse=label_sort == "descending")  # ascending similarity: farthest first
    return [j for _, j in found[:topk]], [1 - c for c, _ in found[:topk]]


@pytest.mark.parametrize("label_sort", ["ascending", "descending"])
def test_true_matches_match_a_plain_loop(tmp_path, label_sort):
    qf, gf, q_pids, g_pids, q_cams, g_cams, _, _ = _setup(tmp_path)
    g_cams = g_cams.copy()
    g_cams[0] = 0  # same camera as query 0, same identity: left out by the rule
    for i in range(len(qf)):
        index, dist = visualizer.true_matches(
            qf, gf, q_pids, g_pids, q_cams, g_cams, i, topk=3, label_sort=label_sort
        )
        ref_index, ref_dist = _reference_true_matches(
            qf, gf, q_pids, g_pids, q_cams, g_cams, i, 3, label_sort
        )
        assert list(index) == ref_index
        np.testing.assert_allclose(dist, ref_dist, atol=1e-5)
    with pytest.raises(ValueError, match="label_sort must be ascending or descending"):
        visualizer.true_matches(qf, gf, q_pids, g_pids, q_cams, g_cams, 0, label_sort="up")


def test_vis_label_adds_a_row_of_true_matches(tmp_path, figures):
    qf, gf, q_pids, g_pids, q_cams, g_cams, q_paths, g_paths = _setup(tmp_path)
    visualizer.save_rank_lists(
        qf, gf, q_pids, g_pids, q_cams, g_cams, q_paths, g_paths, str(tmp_path / "a"),
        num_queries=1, topk=3,
    )  # fmt: skip
    visualizer.save_rank_lists(
        qf, gf, q_pids, g_pids, q_cams, g_cams, q_paths, g_paths, str(tmp_path / "b"),
        num_queries=1, topk=3, vis_label=True, label_sort="descending",
    )  # fmt: skip
    plain, labelled = figures
    assert plain["shape"] == (1, 4) and labelled["shape"] == (2, 4)
    _, dist = visualizer.true_matches(
        qf, gf, q_pids, g_pids, q_cams, g_cams, 0, topk=3, label_sort="descending"
    )
    row = [ax.get_title() for ax in labelled["axes"][5:8]]
    assert row == [f"{d:.3f}" for d in dist]


def test_fastreid_rank_sort_names_are_worst_and_best(tmp_path, figures):
    qf, gf, q_pids, g_pids, q_cams, g_cams, q_paths, g_paths = _setup(tmp_path)
    for order in ("ascending", "worst", "descending", "best"):
        visualizer.save_rank_lists(
            qf, gf, q_pids, g_pids, q_cams, g_cams, q_paths, g_paths, str(tmp_path / order),
            num_queries=2, topk=3, order=order,
        )  # fmt: skip
    suptitles = [f["suptitle"] for f in figures]
    assert suptitles[0:2] == suptitles[2:4]  # ascending == worst
    assert suptitles[4:6] == suptitles[6:8]  # descending == best
