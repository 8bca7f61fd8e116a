"""Rank metrics (CMC, mAP, mINP) under the Market-1501 protocol, in bounded memory.

Which pairs count is :func:`fastreid.evaluation.protocol.market1501_keep`: per query, gallery
entries with the same identity AND the same camera are removed, as are junk entries (pid < 0,
in the query or the gallery); distractors (pid 0) stay. A query left with no true match is
skipped.

The exact path never sorts a gallery row. It only needs the rank of every true match among
the kept gallery entries: the true matches' distances are sorted (a handful per query) and
every other kept entry is dropped into the bin between two consecutive true matches
(``searchsorted``); a per-row histogram of the bins gives, for each true match, how many
false matches come before it. Work is O(G log P) per query instead of O(G log G), and only
one chunk of queries (at most ``chunk_size`` x G values) is held at a time.

For huge galleries the top-k path keeps the ``topk`` nearest gallery entries per query
(the one nearest-neighbour policy of knn.py) and scores only those: mAP is then a lower bound
(true matches ranked beyond ``topk`` count as never retrieved) and is reported as such.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from fastreid.utils.errors import BadInputError

from .distance import as_feature_tensor, check_metric, pairwise_distance, squared_norms
from .knn import faiss_knn, faiss_module, resolve_knn_backend
from .protocol import is_junk, market1501_keep

__all__ = [
    "NoTrueMatchError",
    "RankResult",
    "evaluate_rank",
    "evaluate_single_shot",
    "evaluate_repeated_draws",
    "topk_search",
]

logger = logging.getLogger(__name__)


class NoTrueMatchError(BadInputError, RuntimeError):
    """No query of the test set has a true match: the metrics are undefined."""


ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[int]]
DistanceSource = Union[np.ndarray, torch.Tensor, Callable[[int, int], torch.Tensor]]
ChunkObserver = Callable[[int, torch.Tensor], None]

# Upper bound on the values of one (chunk x gallery) block; keeps memory ~ 25 bytes x this.
_MAX_BLOCK_ELEMENTS = 1 << 24
# Gallery rows scored at once by the top-k search.
_TOPK_GALLERY_BLOCK = 1 << 15


class _RankFields(NamedTuple):
    cmc: np.ndarray
    mAP: float
    mINP: float
    all_AP: np.ndarray
    all_INP: np.ndarray


class RankResult(_RankFields):
    """``(cmc, mAP, mINP, all_AP, all_INP)``, fractions in [0, 1].

    cmc (max_rank,): share of valid queries with a true match within the first k entries.
    all_AP / all_INP (num_valid,): per valid query. Extra attributes: ``num_queries``,
    ``num_skipped`` (queries with no true match left) and ``topk`` (None for the exact
    full-gallery ranking, else the number of gallery entries kept per query).
    """

    num_queries: int = 0
    num_skipped: int = 0
    topk: Optional[int] = None


def _as_labels(values: ArrayLike, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values)).reshape(-1)
    if tensor.dtype.is_floating_point:
        raise TypeError(f"{name} must hold integers (identity / camera ids); got {tensor.dtype}.")
    return tensor.to(torch.int64)


def _effective_chunk(chunk_size: int, num_gallery: int) -> int:
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive (TEST.CHUNK_SIZE); got {chunk_size}.")
    return max(1, min(chunk_size, _MAX_BLOCK_ELEMENTS // max(num_gallery, 1)))


class _GalleryIndex:
    """Gallery labels sorted by identity, to list each query's same-identity entries fast."""

    def __init__(self, g_pids: torch.Tensor, g_camids: torch.Tensor) -> None:
        self.g_pids, self.g_camids = g_pids, g_camids
        self.order = torch.argsort(g_pids, stable=True)
        self.sorted_pids = g_pids[self.order].contiguous()
        self.junk = torch.nonzero(is_junk(g_pids)).reshape(-1)

    def same_pid_pairs(self, q_pids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(row, gallery column) of every same-identity pair, grouped by row."""
        low = torch.searchsorted(self.sorted_pids, q_pids)
        counts = torch.searchsorted(self.sorted_pids, q_pids, right=True) - low
        rows = torch.repeat_interleave(torch.arange(len(q_pids), device=q_pids.device), counts)
        offsets = torch.cumsum(counts, 0) - counts
        within = torch.arange(len(rows), device=rows.device) - offsets[rows]
        return rows, self.order[low[rows] + within]


def _positive_ranks(
    dist: torch.Tensor,
    q_pids: torch.Tensor,
    q_camids: torch.Tensor,
    gallery: _GalleryIndex,
    keep: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """1-based ranks of the true matches of each query among its kept gallery entries.

    dist (C, G) is consumed (overwritten); any increasing function of the distance works.
    ``keep`` (C, G) optionally removes more entries. Returns ``ranks`` (C, P) ascending,
    padded past ``num_pos`` (C,). A false match at exactly a true match's distance ranks
    after it.
    """
    num_rows = dist.shape[0]
    rows, cols = gallery.same_pid_pairs(q_pids)
    positive = market1501_keep(
        q_pids[rows], q_camids[rows], gallery.g_pids[cols], gallery.g_camids[cols]
    )
    if keep is not None:
        positive &= keep[rows, cols]
    pos_rows, pos_cols = rows[positive], cols[positive]
    num_pos = torch.bincount(pos_rows, minlength=num_rows)
    max_pos = int(num_pos.max()) if num_rows else 0
    if max_pos == 0:
        return torch.zeros(num_rows, 0, dtype=torch.float64, device=dist.device), num_pos
    slot = torch.arange(len(pos_rows), device=dist.device)
    slot -= (torch.cumsum(num_pos, 0) - num_pos)[pos_rows]
    pos_dist = torch.full((num_rows, max_pos), math.inf, dtype=dist.dtype, device=dist.device)
    pos_dist[pos_rows, slot] = dist[pos_rows, pos_cols]
    pos_dist = torch.sort(pos_dist, dim=1).values
    # Everything that is not a kept false match goes to the last bin, which no true match
    # counts: same identity (true matches are counted by their slot), junk, not kept.
    dist[rows, cols] = math.inf
    if len(gallery.junk):
        dist[:, gallery.junk] = math.inf
    if keep is not None:
        dist.masked_fill_(~keep, math.inf)
    bins = torch.searchsorted(pos_dist, dist, right=True, out_int32=True)
    offsets = torch.arange(num_rows, dtype=torch.int32, device=dist.device) * (max_pos + 1)
    bins += offsets[:, None]
    hist = torch.bincount(bins.view(-1), minlength=num_rows * (max_pos + 1))
    del bins
    negatives_before = hist.view(num_rows, max_pos + 1)[:, :max_pos].cumsum(dim=1)
    position = torch.arange(1, max_pos + 1, dtype=torch.float64, device=dist.device)
    ranks = negatives_before.to(torch.float64) + position
    return ranks, num_pos


def _query_metrics(
    ranks: torch.Tensor, num_found: torch.Tensor, num_total: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """AP, INP and first-match rank of each query from its true matches' ranks.

    ranks (C, P) ascending 1-based ranks of the retrieved true matches (padded past
    ``num_found``); num_total (C,) all true matches (> num_found in top-k mode). Returns
    (valid mask, AP, INP, first rank) where the last three cover the valid queries only.
    """
    valid = num_total > 0
    ranks, num_found, num_total = ranks[valid], num_found[valid], num_total[valid]
    total = num_total.to(torch.float64)
    if ranks.shape[1] == 0:
        zeros = torch.zeros(len(total), dtype=torch.float64)
        return valid, zeros, zeros, torch.full_like(zeros, math.inf)
    position = torch.arange(1, ranks.shape[1] + 1, dtype=torch.float64, device=ranks.device)
    found_mask = position[None, :] <= num_found[:, None]
    precision = torch.where(found_mask, position[None, :] / ranks, torch.zeros_like(ranks))
    average_precision = precision.sum(dim=1) / total
    last = (num_found - 1).clamp_min(0)
    last_rank = ranks.gather(1, last[:, None]).squeeze(1)
    complete = (num_found == num_total) & (num_found > 0)
    inverse_negative = torch.where(complete, total / last_rank, torch.zeros_like(total))
    first = torch.where(num_found > 0, ranks[:, 0], torch.full_like(total, math.inf))
    return valid, average_precision, inverse_negative, first


class _Accumulator:
    """Collects per-query metrics over chunks and turns them into a RankResult."""

    def __init__(self, max_rank: int) -> None:
        self.max_rank = max_rank
        self.ap, self.inp, self.first = [], [], []
        self.num_queries = 0

    def add(self, ranks, num_found, num_total) -> None:
        valid, ap, inp, first = _query_metrics(ranks, num_found, num_total)
        self.num_queries += int(valid.numel())
        self.ap.append(ap)
        self.inp.append(inp)
        self.first.append(first)

    def result(self, topk: Optional[int] = None) -> RankResult:
        all_ap = torch.cat(self.ap).cpu().numpy() if self.ap else np.zeros(0)
        all_inp = torch.cat(self.inp).cpu().numpy() if self.inp else np.zeros(0)
        first = torch.cat(self.first).cpu().numpy() if self.first else np.zeros(0)
        num_valid = len(all_ap)
        if num_valid == 0:
            raise NoTrueMatchError(
                f"None of the {self.num_queries} queries has a true match in the gallery (a "
                "gallery image of its identity from another camera); check the test set's "
                "query/gallery split and its pids/camids (DATASETS.TESTS)."
            )
        cmc = (first[:, None] <= np.arange(1, self.max_rank + 1)[None, :]).mean(axis=0)
        result = RankResult(cmc, float(all_ap.mean()), float(all_inp.mean()), all_ap, all_inp)
        result.num_queries = self.num_queries
        result.num_skipped = self.num_queries - num_valid
        result.topk = topk
        if result.num_skipped:
            logger.info(
                "%d of %d queries have no true match in the gallery and were skipped.",
                result.num_skipped,
                self.num_queries,
            )
        return result


def _distance_chunks(
    distmat: Optional[DistanceSource],
    query_features: Optional[ArrayLike],
    gallery_features: Optional[ArrayLike],
    metric: str,
    num_query: int,
    chunk: int,
    on_chunk: Optional[ChunkObserver] = None,
):
    """Yields (start, end, scores (end - start, G)) that the caller may overwrite.

    From features, the scores are an increasing function of the distance that costs one
    matrix product and nothing else: ``-cos`` for cosine, ``|g|^2 - 2 q.g`` (the squared
    distance minus ``|q|^2``) for euclidean. ``on_chunk`` still sees true distances.
    """
    if distmat is None:
        query = as_feature_tensor(query_features, "query_features")
        gallery = as_feature_tensor(gallery_features, "gallery_features")
        if query.shape[1] != gallery.shape[1]:
            raise ValueError(
                f"Query and gallery features differ in dimension: {query.shape[1]} vs "
                f"{gallery.shape[1]}."
            )
        gallery_norms = squared_norms(gallery)
        if metric == "cosine" and not torch.allclose(
            gallery_norms, torch.ones((), device=gallery.device), rtol=0, atol=1e-5
        ):
            gallery = torch.nn.functional.normalize(gallery, dim=1)
        for start in range(0, num_query, chunk):
            end = min(start + chunk, num_query)
            block = query[start:end]
            if metric == "cosine":
                scores = torch.nn.functional.normalize(block, dim=1).neg_() @ gallery.T
                if on_chunk is not None:
                    on_chunk(start, scores + 1.0)
            else:
                scores = (block * -2.0) @ gallery.T
                scores += gallery_norms[None, :]
                if on_chunk is not None:
                    squared = scores + squared_norms(block)[:, None]
                    on_chunk(start, squared.clamp_min_(0.0).sqrt_())
            yield start, end, scores
        return
    for start in range(0, num_query, chunk):
        end = min(start + chunk, num_query)
        if callable(distmat):
            dist = torch.as_tensor(distmat(start, end))
        else:
            # A copy: the ranking overwrites its input.
            dist = torch.as_tensor(np.asarray(distmat[start:end])).clone()
        if on_chunk is not None:
            on_chunk(start, dist)
        yield start, end, dist


def _check_inputs(
    distmat, query_features, gallery_features, q_pids, g_pids, q_camids, g_camids
) -> Tuple[int, int]:
    if distmat is None and (query_features is None or gallery_features is None):
        raise ValueError("Pass either distmat or both query_features and gallery_features.")
    num_query, num_gallery = len(q_pids), len(g_pids)
    if len(q_camids) != num_query or len(g_camids) != num_gallery:
        raise ValueError(
            f"pids and camids differ in length: {num_query} query pids vs {len(q_camids)} "
            f"camids, {num_gallery} gallery pids vs {len(g_camids)} camids."
        )
    if distmat is not None and not callable(distmat):
        shape = tuple(distmat.shape)
        if shape != (num_query, num_gallery):
            raise ValueError(
                f"distmat has shape {shape}; expected (num_query, num_gallery) = "
                f"({num_query}, {num_gallery})."
            )
    if query_features is not None and len(query_features) != num_query:
        raise ValueError(f"{len(query_features)} query features for {num_query} query pids.")
    if gallery_features is not None and len(gallery_features) != num_gallery:
        raise ValueError(
            f"{len(gallery_features)} gallery features for {num_gallery} gallery pids."
        )
    if num_query == 0 or num_gallery == 0:
        raise ValueError(f"Empty query ({num_query}) or gallery ({num_gallery}) set.")
    return num_query, num_gallery


def _capped_max_rank(max_rank: int, num_gallery: int) -> int:
    if max_rank > num_gallery:
        logger.info("Gallery has only %d entries; CMC is cut at that rank.", num_gallery)
        return num_gallery
    return max_rank


def evaluate_rank(
    distmat: Optional[DistanceSource],
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    *,
    query_features: Optional[ArrayLike] = None,
    gallery_features: Optional[ArrayLike] = None,
    metric: str = "cosine",
    chunk_size: int = 512,
    topk_gallery_limit: int = 0,
    topk: int = 1000,
    on_chunk: Optional[ChunkObserver] = None,
) -> RankResult:
    """CMC, mAP and mINP of a query set against a gallery (Market-1501 protocol).

    Args:
        distmat: distances (Q, G) as an array, or a function ``(start, end) -> (end - start,
            G)`` tensor of distances for those queries, or None to compute distances from
            ``query_features`` (Q, D) and ``gallery_features`` (G, D) with ``metric``.
        q_pids, g_pids, q_camids, g_camids: integer labels (Q,), (G,), (Q,), (G,).
        max_rank: length of the CMC curve (cut at G for tiny galleries).
        chunk_size: queries scored at once; memory is O(chunk_size x G), never O(Q x G).
        topk_gallery_limit: when > 0 and G exceeds it (features given), rank only the
            ``topk`` nearest gallery entries per query (faiss when installed); mAP and mINP
            then treat true matches beyond ``topk`` as never retrieved (lower bounds).
        on_chunk: called as ``on_chunk(start, distances)`` with each chunk of distances
            before it is ranked (used to accumulate ROC statistics in the same pass).

    Returns:
        RankResult ``(cmc, mAP, mINP, all_AP, all_INP)`` as fractions, with ``num_skipped``.
    """
    metric = check_metric(metric)
    num_query, num_gallery = _check_inputs(
        distmat, query_features, gallery_features, q_pids, g_pids, q_camids, g_camids
    )
    q_pids_t, g_pids_t = _as_labels(q_pids, "q_pids"), _as_labels(g_pids, "g_pids")
    q_cam_t, g_cam_t = _as_labels(q_camids, "q_camids"), _as_labels(g_camids, "g_camids")
    max_rank = _capped_max_rank(max_rank, num_gallery)

    use_topk = (
        topk_gallery_limit > 0
        and num_gallery > topk_gallery_limit
        and distmat is None
        and topk < num_gallery
    )
    if use_topk:
        return _evaluate_rank_topk(
            query_features,
            gallery_features,
            q_pids_t,
            g_pids_t,
            q_cam_t,
            g_cam_t,
            max_rank=min(max_rank, topk),
            metric=metric,
            topk=topk,
        )

    if distmat is None and isinstance(query_features, torch.Tensor):
        # Features on a GPU: rank there too (labels follow the features).
        device = query_features.device
        q_pids_t, g_pids_t = q_pids_t.to(device), g_pids_t.to(device)
        q_cam_t, g_cam_t = q_cam_t.to(device), g_cam_t.to(device)
    chunk = _effective_chunk(chunk_size, num_gallery)
    accumulator = _Accumulator(max_rank)
    gallery = _GalleryIndex(g_pids_t, g_cam_t)
    for start, end, dist in _distance_chunks(
        distmat, query_features, gallery_features, metric, num_query, chunk, on_chunk
    ):
        ranks, num_pos = _positive_ranks(dist, q_pids_t[start:end], q_cam_t[start:end], gallery)
        accumulator.add(ranks, num_pos, num_pos)
    return accumulator.result()


# --------------------------------------------------------------------------------------
# Top-k search for galleries too large to rank exactly
# --------------------------------------------------------------------------------------
def topk_search(
    query_features: ArrayLike,
    gallery_features,
    k: int,
    metric: str = "cosine",
    block_size: int = _TOPK_GALLERY_BLOCK,
    backend: str = "auto",
) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest gallery entries of every query, gallery read in blocks.

    ``gallery_features`` is anything with ``len()`` and row slicing (an array, a
    ``np.load(..., mmap_mode="r")`` memmap, or a lazy block reader), so only one block of
    gallery rows is in memory at a time. ``backend`` follows the one nearest-neighbour policy
    (:func:`fastreid.evaluation.knn.resolve_knn_backend`: faiss on a GPU, torch otherwise).

    Returns:
        distances (Q, k) float32 ascending (cosine: 1 - cos; euclidean: L2) and gallery
        indices (Q, k) int64.
    """
    metric = check_metric(metric)
    query = as_feature_tensor(query_features, "query_features")
    if metric == "cosine":
        query = torch.nn.functional.normalize(query, dim=1)
    num_gallery = len(gallery_features)
    k = min(k, num_gallery)
    faiss = faiss_module() if resolve_knn_backend(backend) == "faiss" else None
    query_np = np.ascontiguousarray(query.numpy())
    largest = metric == "cosine"  # inner products: keep the largest
    if faiss is not None:
        heap = faiss.ResultHeap(len(query_np), k, keep_max=largest)
    else:
        best_scores = torch.full((len(query), 0), 0.0)
        best_index = torch.zeros((len(query), 0), dtype=torch.int64)
    for start in range(0, num_gallery, block_size):
        block = as_feature_tensor(gallery_features[start : start + block_size], "gallery")
        if metric == "cosine":
            block = torch.nn.functional.normalize(block, dim=1)
        kb = min(k, len(block))
        if faiss is not None:
            scores, index = faiss_knn(
                query_np, np.ascontiguousarray(block.numpy()), kb, inner_product=largest
            )
            heap.add_result(scores, index + start)
        else:
            if largest:
                scores = query @ block.T
            else:
                scores = pairwise_distance(query, block, "euclidean").square_()
            scores, index = torch.topk(scores, kb, dim=1, largest=largest)
            best_scores = torch.cat([best_scores, scores], dim=1)
            best_index = torch.cat([best_index, index + start], dim=1)
            best_scores, order = torch.topk(
                best_scores, min(k, best_scores.shape[1]), dim=1, largest=largest
            )
            best_index = best_index.gather(1, order)
    if faiss is not None:
        heap.finalize()
        scores, index = torch.from_numpy(heap.D), torch.from_numpy(heap.I)
    else:
        scores, index = best_scores, best_index
    distances = (1.0 - scores) if largest else scores.clamp_min(0.0).sqrt()
    return distances.float().numpy(), index.numpy()


def _total_positives(q_pids, q_camids, g_pids, g_camids) -> torch.Tensor:
    """True matches per query that the Market-1501 rule keeps (over the whole gallery)."""
    rows, cols = _GalleryIndex(g_pids, g_camids).same_pid_pairs(q_pids)
    kept = market1501_keep(q_pids[rows], q_camids[rows], g_pids[cols], g_camids[cols])
    return torch.bincount(rows[kept], minlength=len(q_pids))


def _evaluate_rank_topk(
    query_features,
    gallery_features,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int,
    metric: str,
    topk: int,
) -> RankResult:
    logger.warning(
        "Gallery of %d entries exceeds TEST.TOPK_GALLERY_LIMIT: ranking the top %d per query "
        "only; mAP and mINP are computed over the top-%d (lower bounds of the full values).",
        len(g_pids),
        topk,
        topk,
    )
    distances, index = topk_search(query_features, gallery_features, topk, metric)
    index = torch.from_numpy(index)
    num_total = _total_positives(q_pids, q_camids, g_pids, g_camids)
    accumulator = _Accumulator(max_rank)
    chunk = _effective_chunk(4096, topk)
    for start in range(0, len(q_pids), chunk):
        end = min(start + chunk, len(q_pids))
        idx = index[start:end]
        idx_valid = idx >= 0  # faiss pads with -1 when the gallery is short
        gp = g_pids[idx.clamp_min(0)]
        gc = g_camids[idx.clamp_min(0)]
        same_pid = gp == q_pids[start:end, None]
        kept = idx_valid & market1501_keep(
            q_pids[start:end, None], q_camids[start:end, None], gp, gc
        )
        positive = same_pid & kept
        rank = kept.cumsum(dim=1).to(torch.float64)
        num_found = positive.sum(dim=1)
        ranks = torch.where(positive, rank, torch.full_like(rank, math.inf))
        ranks = torch.sort(ranks, dim=1).values[:, : max(int(num_found.max()), 0)]
        accumulator.add(ranks, num_found, num_total[start:end])
    return accumulator.result(topk=topk)


# --------------------------------------------------------------------------------------
# Repeated random draws: CUHK03 single-gallery-shot and VehicleID protocols
# --------------------------------------------------------------------------------------
def _one_per_identity(
    kept: torch.Tensor, g_pid_index: torch.Tensor, num_ids: int, generator: torch.Generator
) -> torch.Tensor:
    """For each row, keep one random kept gallery entry per identity; returns a mask."""
    scores = torch.rand(kept.shape, generator=generator).masked_fill_(~kept, -1.0)
    index = g_pid_index[None, :].expand_as(scores)
    best = torch.full((kept.shape[0], num_ids), -1.0).scatter_reduce_(
        1, index, scores, reduce="amax"
    )
    return kept & (scores == best.gather(1, index))


def evaluate_single_shot(
    distmat: Optional[DistanceSource],
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    *,
    num_repeats: int = 10,
    seed: int = 0,
    query_features: Optional[ArrayLike] = None,
    gallery_features: Optional[ArrayLike] = None,
    metric: str = "cosine",
    chunk_size: int = 512,
) -> RankResult:
    """CUHK03 single-gallery-shot protocol: metrics averaged over random gallery draws.

    For every query and every draw, one gallery image per identity is drawn at random
    among the entries the Market-1501 rule keeps (other camera), so each query has
    exactly one true match and AP = INP = 1 / its rank. CMC, mAP and mINP are averaged
    over ``num_repeats`` draws (``all_AP`` / ``all_INP`` per query, averaged too).
    Arguments as in :func:`evaluate_rank`.
    """
    metric = check_metric(metric)
    num_query, num_gallery = _check_inputs(
        distmat, query_features, gallery_features, q_pids, g_pids, q_camids, g_camids
    )
    if num_repeats <= 0:
        raise ValueError(f"num_repeats must be positive (TEST.NUM_DRAWS); got {num_repeats}.")
    q_pids_t, g_pids_t = _as_labels(q_pids, "q_pids"), _as_labels(g_pids, "g_pids")
    q_cam_t, g_cam_t = _as_labels(q_camids, "q_camids"), _as_labels(g_camids, "g_camids")
    _, g_pid_index = torch.unique(g_pids_t, return_inverse=True)
    num_ids = int(g_pid_index.max()) + 1
    max_rank = _capped_max_rank(max_rank, num_ids)
    accumulators = [_Accumulator(max_rank) for _ in range(num_repeats)]
    gallery = _GalleryIndex(g_pids_t, g_cam_t)
    chunk = _effective_chunk(chunk_size, num_gallery)
    for start, end, dist in _distance_chunks(
        distmat, query_features, gallery_features, metric, num_query, chunk
    ):
        qp, qc = q_pids_t[start:end], q_cam_t[start:end]
        kept = market1501_keep(qp[:, None], qc[:, None], g_pids_t[None, :], g_cam_t[None, :])
        for repeat, accumulator in enumerate(accumulators):
            generator = torch.Generator().manual_seed(seed * 1_000_003 + repeat * 7_919 + start)
            keep = _one_per_identity(kept, g_pid_index, num_ids, generator)
            ranks, num_pos = _positive_ranks(dist.clone(), qp, qc, gallery, keep)
            accumulator.add(ranks, num_pos, num_pos)
    results = [accumulator.result() for accumulator in accumulators]
    return _average_results(results, concatenate=False)


def _average_results(results: Sequence[RankResult], concatenate: bool) -> RankResult:
    cmc = np.mean([r.cmc for r in results], axis=0)
    if concatenate:
        all_ap = np.concatenate([r.all_AP for r in results])
        all_inp = np.concatenate([r.all_INP for r in results])
    else:
        all_ap = np.mean([r.all_AP for r in results], axis=0)
        all_inp = np.mean([r.all_INP for r in results], axis=0)
    average = RankResult(
        cmc,
        float(np.mean([r.mAP for r in results])),
        float(np.mean([r.mINP for r in results])),
        all_ap,
        all_inp,
    )
    average.num_queries = results[0].num_queries
    average.num_skipped = results[0].num_skipped
    return average


def evaluate_repeated_draws(
    features: ArrayLike,
    pids: ArrayLike,
    max_rank: int = 50,
    *,
    num_draws: int = 10,
    seed: int = 0,
    metric: str = "cosine",
    chunk_size: int = 512,
) -> RankResult:
    """VehicleID protocol: one random image per identity forms the gallery, the rest query.

    Metrics are averaged over ``num_draws`` draws (``all_AP`` / ``all_INP`` hold every
    query of every draw). No camera rule applies: the gallery image is never the query.

    Args:
        features (N, D) and pids (N,) of the whole test split.
    """
    features_t = as_feature_tensor(features)
    pids_np = np.asarray(pids).reshape(-1).astype(np.int64)
    if len(pids_np) != len(features_t):
        raise ValueError(f"{len(features_t)} features for {len(pids_np)} pids.")
    if num_draws <= 0:
        raise ValueError(f"num_draws must be positive (TEST.NUM_DRAWS); got {num_draws}.")
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(num_draws):
        order = rng.permutation(len(pids_np))
        _, first = np.unique(pids_np[order], return_index=True)
        is_gallery = np.zeros(len(pids_np), dtype=bool)
        is_gallery[order[first]] = True
        query_idx, gallery_idx = np.flatnonzero(~is_gallery), np.flatnonzero(is_gallery)
        results.append(
            evaluate_rank(
                None,
                pids_np[query_idx],
                pids_np[gallery_idx],
                np.zeros(len(query_idx), dtype=np.int64),
                np.ones(len(gallery_idx), dtype=np.int64),
                max_rank,
                query_features=features_t[torch.from_numpy(query_idx)],
                gallery_features=features_t[torch.from_numpy(gallery_idx)],
                metric=metric,
                chunk_size=chunk_size,
            )
        )
    return _average_results(results, concatenate=True)
