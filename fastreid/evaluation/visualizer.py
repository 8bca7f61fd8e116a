"""Pictures of evaluation results: rank lists, ROC curves and distance histograms (PNG).

Every function takes plain features / labels / paths, so it works from saved features
as well as right after inference. Rendering uses matplotlib's Agg backend (no display).
"""

from __future__ import annotations

import logging
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from fastreid.utils.dependencies import require
from fastreid.utils.file_io import save_figure

from .distance import as_feature_tensor, pairwise_distance
from .protocol import market1501_keep
from .roc import roc_curve_points

__all__ = [
    "pair_distances",
    "plot_distance_histograms",
    "plot_rank_list",
    "plot_roc",
    "rank_lists",
    "save_rank_lists",
    "true_matches",
]

logger = logging.getLogger(__name__)

MATCH_COLOR = (0.10, 0.70, 0.20)  # green: true match
MISMATCH_COLOR = (0.85, 0.10, 0.10)  # red: false match


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _load_thumbnail(path: str, size: Tuple[int, int]) -> np.ndarray:
    """RGB uint8 (H, W, 3) thumbnail; a grey tile when the file cannot be read."""
    cv2 = require("cv2", "Drawing rank lists")

    height, width = size
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path and os.path.exists(path) else None
    if image is None:
        return np.full((height, width, 3), 160, dtype=np.uint8)
    return cv2.cvtColor(cv2.resize(image, (width, height)), cv2.COLOR_BGR2RGB)


def rank_lists(
    query_features,
    gallery_features,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    query_indices: Sequence[int],
    topk: int = 10,
    metric: str = "cosine",
) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Top-k gallery entries of the given queries under the Market-1501 rule.

    Returns, per query, (gallery indices (k,), distances (k,), is_true_match (k,) bool);
    pairs :func:`~fastreid.evaluation.protocol.market1501_keep` drops are skipped.
    """
    query = as_feature_tensor(query_features, "query_features")
    gallery = as_feature_tensor(gallery_features, "gallery_features")
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    out = []
    for i in query_indices:
        dist = pairwise_distance(query[i : i + 1], gallery, metric)[0].numpy()
        removed = ~market1501_keep(q_pids[i], q_camids[i], g_pids, g_camids)
        dist = np.where(removed, np.inf, dist)
        order = np.argsort(dist, kind="stable")[: min(topk, int((~removed).sum()))]
        out.append((order, dist[order], g_pids[order] == q_pids[i]))
    return out


def plot_rank_list(
    query_path: str,
    gallery_paths: Sequence[str],
    is_match: Sequence[bool],
    output_path: str,
    distances: Optional[Sequence[float]] = None,
    title: str = "",
    size: Tuple[int, int] = (128, 64),
    label_paths: Optional[Sequence[str]] = None,
    label_distances: Optional[Sequence[float]] = None,
) -> str:
    """Save one rank list: the query then its top-k gallery images, bordered green for a
    true match and red for a false one. With ``label_paths`` (FastReID's ``--vis-label``) a
    second row shows the query's true matches (``label_distances`` under each). Returns
    ``output_path``."""
    plt = _pyplot()
    num = max(len(gallery_paths), len(label_paths or ())) + 1
    rows = 1 if label_paths is None else 2
    fig, grid = plt.subplots(rows, num, figsize=(1.3 * num, 2.9 * rows), squeeze=False)
    if label_paths is not None:
        _plot_true_matches(grid[1], label_paths, label_distances, size)
    for ax in grid[0][len(gallery_paths) + 1 :]:
        ax.axis("off")
    axes = grid[0]
    axes[0].imshow(_load_thumbnail(query_path, size))
    axes[0].set_title("query", fontsize=8)
    for k, (path, match) in enumerate(zip(gallery_paths, is_match), start=1):
        axes[k].imshow(_load_thumbnail(path, size))
        color = MATCH_COLOR if match else MISMATCH_COLOR
        for spine in axes[k].spines.values():
            spine.set_visible(True)
            spine.set_edgecolor(color)
            spine.set_linewidth(4)
        label = f"{k}" if distances is None else f"{k}: {distances[k - 1]:.3f}"
        axes[k].set_title(label, fontsize=7, color=color)
    for ax in grid.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, output_path)


def _plot_true_matches(axes, paths, distances, size) -> None:
    axes[0].axis("off")
    axes[0].text(0.5, 0.5, f"true matches\n({len(paths)} shown)", ha="center", va="center",
                 fontsize=7)  # fmt: skip
    for k, path in enumerate(paths, start=1):
        axes[k].imshow(_load_thumbnail(path, size))
        for spine in axes[k].spines.values():
            spine.set_visible(True)
            spine.set_edgecolor(MATCH_COLOR)
            spine.set_linewidth(4)
        if distances is not None:
            axes[k].set_title(f"{distances[k - 1]:.3f}", fontsize=7, color=MATCH_COLOR)
    for ax in axes[len(paths) + 1 :]:
        ax.axis("off")


def true_matches(
    query_features,
    gallery_features,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    query_index: int,
    topk: int = 10,
    metric: str = "cosine",
    label_sort: str = "ascending",
) -> Tuple[np.ndarray, np.ndarray]:
    """The gallery images of the query's identity that the Market-1501 rule keeps, and
    their distances: ``label_sort`` "ascending" by similarity (FastReID's default: the
    hardest, farthest matches first) or "descending" (the nearest first); at most ``topk``."""
    if label_sort not in ("ascending", "descending"):
        raise ValueError(f"label_sort must be ascending or descending; got '{label_sort}'.")
    query = as_feature_tensor(query_features, "query_features")
    gallery = as_feature_tensor(gallery_features, "gallery_features")
    i = int(query_index)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    dist = pairwise_distance(query[i : i + 1], gallery, metric)[0].numpy()
    keep = market1501_keep(q_pids[i], np.asarray(q_camids)[i], g_pids, np.asarray(g_camids))
    positives = np.flatnonzero(keep & (g_pids == q_pids[i]))
    order = np.argsort(dist[positives], kind="stable")
    if label_sort == "ascending":
        order = order[::-1]
    chosen = positives[order][:topk]
    return chosen, dist[chosen]


def save_rank_lists(
    query_features,
    gallery_features,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    q_paths: Sequence[str],
    g_paths: Sequence[str],
    output_dir: str,
    num_queries: int = 10,
    topk: int = 10,
    metric: str = "cosine",
    order: str = "first",
    seed: int = 0,
    vis_label: bool = False,
    label_sort: str = "ascending",
) -> List[str]:
    """Write ``num_queries`` rank-list PNGs into ``output_dir`` and return their paths.

    ``order``: "first" (queries in order), "random", or "worst" / "best" (by the rank of
    the first true match, hardest or easiest first); FastReID's "ascending" / "descending"
    mean "worst" / "best". ``vis_label`` adds a row of the query's true matches, ordered by
    ``label_sort`` (see :func:`true_matches`).
    """
    order = {"ascending": "worst", "descending": "best"}.get(order, order)
    num_query = len(q_pids)
    if order == "random":
        chosen = np.random.default_rng(seed).permutation(num_query)[:num_queries]
    elif order in ("worst", "best"):
        every = rank_lists(
            query_features, gallery_features, q_pids, g_pids, q_camids, g_camids,
            range(num_query), topk=len(g_pids), metric=metric,
        )  # fmt: skip
        first = np.array([np.argmax(m) if m.any() else len(m) for _, _, m in every])
        chosen = np.argsort(-first if order == "worst" else first, kind="stable")[:num_queries]
    elif order == "first":
        chosen = np.arange(min(num_queries, num_query))
    else:
        raise ValueError(f"order must be first, random, worst or best; got '{order}'.")
    lists = rank_lists(
        query_features, gallery_features, q_pids, g_pids, q_camids, g_camids,
        chosen, topk=topk, metric=metric,
    )  # fmt: skip
    written = []
    for i, (index, dist, match) in zip(chosen, lists):
        name = f"rank_list_{int(i):05d}_pid{int(q_pids[i])}.png"
        label_paths = label_distances = None
        if vis_label:
            label_index, label_distances = true_matches(
                query_features, gallery_features, q_pids, g_pids, q_camids, g_camids, i,
                topk=topk, metric=metric, label_sort=label_sort,
            )  # fmt: skip
            label_paths = [g_paths[j] for j in label_index]
        written.append(
            plot_rank_list(
                q_paths[i],
                [g_paths[j] for j in index],
                match,
                os.path.join(output_dir, name),
                distances=dist,
                title=f"query {int(i)}  pid {int(q_pids[i])}  cam {int(q_camids[i])}",
                label_paths=label_paths,
                label_distances=label_distances,
            )
        )
    logger.info("Wrote %d rank lists to %s", len(written), output_dir)
    return written


def pair_distances(
    query_features,
    gallery_features,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    metric: str = "cosine",
    max_negatives: int = 200_000,
    chunk_size: int = 512,
    seed: int = 0,
) -> Tuple[np.ndarray, np.ndarray]:
    """Distances of genuine (same identity) and impostor query-gallery pairs.

    Pairs the Market-1501 rule removes are left out; impostor pairs are subsampled to at
    most ``max_negatives`` (uniformly, per chunk) so memory stays bounded.
    """
    query = as_feature_tensor(query_features, "query_features")
    gallery = as_feature_tensor(gallery_features, "gallery_features")
    q_pids, g_pids = torch.as_tensor(np.asarray(q_pids)), torch.as_tensor(np.asarray(g_pids))
    q_cams, g_cams = torch.as_tensor(np.asarray(q_camids)), torch.as_tensor(np.asarray(g_camids))
    share = min(1.0, max_negatives / max(1, len(query) * len(gallery)))
    generator = torch.Generator().manual_seed(seed)
    positives, negatives = [], []
    for start in range(0, len(query), chunk_size):
        end = min(start + chunk_size, len(query))
        dist = pairwise_distance(query[start:end], gallery, metric)
        same = q_pids[start:end, None] == g_pids[None, :]
        kept = market1501_keep(
            q_pids[start:end, None], q_cams[start:end, None], g_pids[None, :], g_cams[None, :]
        )
        positives.append(dist[same & kept])
        sampled = torch.rand(dist.shape, generator=generator) < share
        negatives.append(dist[~same & kept & sampled])
    return torch.cat(positives).numpy(), torch.cat(negatives).numpy()


def plot_distance_histograms(
    positive: np.ndarray,
    negative: np.ndarray,
    output_path: str,
    bins: int = 100,
    title: str = "Distances of genuine and impostor pairs",
) -> str:
    """Save overlaid, normalised histograms of genuine vs impostor distances, under
    ``title`` (the pair counts are added to it)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_title(f"{title}\n{len(positive)} genuine, {len(negative)} impostor pairs", fontsize=9)
    ax.hist(negative, bins=bins, density=True, alpha=0.6, color="tab:red", label="impostor")
    ax.hist(positive, bins=bins, density=True, alpha=0.6, color="tab:green", label="genuine")
    ax.set_xlabel("distance")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, output_path)


def plot_roc(
    positive: np.ndarray,
    negative: np.ndarray,
    output_path: str,
    title: str = "ROC of genuine vs impostor pairs",
) -> str:
    """Save the ROC (TPR vs FPR, log FPR axis) of genuine vs impostor distances, under
    ``title`` (the pair counts are added to it).

    Genuine pairs are the positives and the similarity (minus the distance) the score.
    """
    plt = _pyplot()
    fpr, tpr, _ = roc_curve_points(-np.asarray(positive), -np.asarray(negative))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.set_title(f"{title}\n{len(positive)} genuine, {len(negative)} impostor pairs", fontsize=9)
    ax.plot(np.maximum(fpr, 1e-6), tpr, color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlim(1e-5, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, output_path)
