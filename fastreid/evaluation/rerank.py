"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) in bounded memory.

The paper's recipe builds dense (Q+G) x (Q+G) matrices; here everything it needs is kept
sparse: the (k1 + 1) nearest neighbours of every image (found one chunk of rows at a
time), the k-reciprocal encoding V as a sparse matrix (about k1 non-zeros per row) and,
per query chunk, the Jaccard distance through V's inverted index. Memory is O(N x k1)
plus one (chunk x N) block, so it runs at Market-1501 scale and beyond.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from .distance import as_feature_tensor, check_metric, squared_norms

__all__ = ["KReciprocalDistance", "re_ranking"]


class KReciprocalDistance:
    """Re-ranked query-gallery distances, computed one query chunk at a time.

    The base distance is the squared euclidean distance (``metric="euclidean"``, as in the
    paper) or ``1 - cos`` (``"cosine"``), divided by each row's maximum over all Q + G
    images. The final distance is ``(1 - lambda) * jaccard + lambda * base``.

    Call ``distances(start, end)`` (or the object itself) for the (end - start, G) block of
    query rows, or ``dense()`` for the full (Q, G) array. Pass the object as ``distmat`` to
    :func:`fastreid.evaluation.evaluate_rank` to rank without ever holding Q x G values.

    Args:
        query_features (Q, D), gallery_features (G, D).
        k1: neighbours of the k-reciprocal sets; k2: neighbours of the local expansion of V.
        lambda_value: weight of the base distance.
    """

    def __init__(
        self,
        query_features: torch.Tensor,
        gallery_features: torch.Tensor,
        k1: int = 20,
        k2: int = 6,
        lambda_value: float = 0.3,
        metric: str = "euclidean",
        chunk_size: int = 512,
    ) -> None:
        query = as_feature_tensor(query_features, "query_features")
        gallery = as_feature_tensor(gallery_features, "gallery_features")
        self.metric = check_metric(metric)
        if k1 < 1 or k2 < 1:
            raise ValueError(f"TEST.RERANK.K1 and K2 must be >= 1; got {k1}, {k2}.")
        self.num_query = len(query)
        features = torch.cat([query, gallery])
        if self.metric == "cosine":
            features = F.normalize(features, dim=1)
        self.features = features
        self.sq_norms = squared_norms(features)
        self.k1, self.k2, self.lambda_value = k1, k2, float(lambda_value)
        self.chunk_size = max(1, int(chunk_size))
        num = len(features)
        k1 = min(k1, num - 1)

        neighbours, self.row_max = self._neighbours(k1 + 1)
        half = int(round(self.k1 / 2))
        reciprocal = self._reciprocal(neighbours[:, : k1 + 1])
        reciprocal_half = self._reciprocal(neighbours[:, : min(half, k1) + 1])
        rows, cols = self._expansion(neighbours, reciprocal, reciprocal_half, k1, half)
        weights = torch.exp(-self._pair_distance(rows, cols) / self.row_max[rows])
        encoding = sp.csr_matrix(
            (weights.double().numpy(), (rows.numpy(), cols.numpy())), shape=(num, num)
        )
        row_sums = np.asarray(encoding.sum(axis=1)).reshape(-1)
        encoding = sp.diags(1.0 / row_sums) @ encoding
        if self.k2 != 1:
            k2 = min(self.k2, k1 + 1)
            averaging = sp.csr_matrix(
                (
                    np.full(num * k2, 1.0 / k2),
                    neighbours[:, :k2].reshape(-1).numpy(),
                    np.arange(0, num * k2 + 1, k2),
                ),
                shape=(num, num),
            )
            encoding = averaging @ encoding
        self.query_encoding = encoding[: self.num_query].tocsr()
        self.gallery_encoding_by_column = encoding[self.num_query :].tocsc()

    # -- construction steps ------------------------------------------------------------
    def _base_distance(self, rows: slice, cols: slice = slice(None)) -> torch.Tensor:
        a, b = self.features[rows], self.features[cols]
        dots = a @ b.T
        if self.metric == "cosine":
            return dots.neg_().add_(1.0)
        dots.mul_(-2.0).add_(self.sq_norms[rows][:, None]).add_(self.sq_norms[cols][None, :])
        return dots.clamp_min_(0.0)

    def _neighbours(self, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(N, k) nearest neighbours by base distance (self first) and each row's maximum."""
        num = len(self.features)
        neighbours = torch.empty(num, k, dtype=torch.int64)
        row_max = torch.empty(num)
        for start in range(0, num, self.chunk_size):
            rows = slice(start, min(start + self.chunk_size, num))
            dist = self._base_distance(rows)
            row_max[rows] = dist.max(dim=1).values.clamp_min(1e-12)
            neighbours[rows] = torch.topk(dist, k, dim=1, largest=False, sorted=True).indices
        return neighbours, row_max

    def _reciprocal(self, forward: torch.Tensor) -> torch.Tensor:
        """Mask (N, k): forward[i, j] has i among its own first k neighbours."""
        mask = torch.empty(forward.shape, dtype=torch.bool)
        for start in range(0, len(forward), self.chunk_size):
            end = min(start + self.chunk_size, len(forward))
            own = torch.arange(start, end)[:, None, None]
            mask[start:end] = (forward[forward[start:end]] == own).any(dim=2)
        return mask

    def _expansion(self, neighbours, reciprocal, reciprocal_half, k1, half):
        """(row, col) index pairs of each image's expanded k-reciprocal set, deduplicated."""
        forward = neighbours[:, : k1 + 1]
        forward_half = neighbours[:, : min(half, k1) + 1]
        num = len(forward)
        keys = []
        for start in range(0, num, self.chunk_size):
            end = min(start + self.chunk_size, num)
            own = torch.arange(start, end)
            members = forward[start:end]  # (c, K) candidates
            member_ok = reciprocal[start:end]
            recip_set = members.masked_fill(~member_ok, -1)
            cand_set = forward_half[members]  # (c, K, Kh)
            cand_ok = reciprocal_half[members]
            inside = (cand_set[..., None] == recip_set[:, None, None, :]).any(dim=3) & cand_ok
            accepted = member_ok & (inside.sum(dim=2) * 3 > 2 * cand_ok.sum(dim=2))
            base_cols = members[member_ok]
            base_rows = own[:, None].expand_as(members)[member_ok]
            grow_mask = accepted[:, :, None] & cand_ok
            grow_cols = cand_set[grow_mask]
            grow_rows = own[:, None, None].expand_as(cand_set)[grow_mask]
            keys.append(torch.cat([base_rows, grow_rows]) * num + torch.cat([base_cols, grow_cols]))
        keys = torch.unique(torch.cat(keys))
        return keys // num, keys % num

    def _pair_distance(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        out = torch.empty(len(rows))
        step = 8192
        for start in range(0, len(rows), step):
            r, c = rows[start : start + step], cols[start : start + step]
            dots = (self.features[r] * self.features[c]).sum(dim=1)
            if self.metric == "cosine":
                out[start : start + step] = 1.0 - dots
            else:
                out[start : start + step] = (
                    self.sq_norms[r] + self.sq_norms[c] - 2.0 * dots
                ).clamp_min(0.0)
        return out

    # -- query-time distances ------------------------------------------------------------
    def _jaccard(self, start: int, end: int) -> np.ndarray:
        """Jaccard distance (end - start, G) between the queries' and the gallery's V."""
        block = self.query_encoding[start:end].tocoo()
        by_col = self.gallery_encoding_by_column
        counts = np.diff(by_col.indptr)[block.col]
        total = int(counts.sum())
        num_gallery = by_col.shape[0]
        if total == 0:
            return np.ones((end - start, num_gallery), dtype=np.float32)
        offsets = np.repeat(np.cumsum(counts) - counts, counts)
        positions = np.arange(total) - offsets + np.repeat(by_col.indptr[block.col], counts)
        minimum = np.minimum(np.repeat(block.data, counts), by_col.data[positions])
        overlap = sp.coo_matrix(
            (minimum, (np.repeat(block.row, counts), by_col.indices[positions])),
            shape=(end - start, num_gallery),
        ).toarray()
        return (1.0 - overlap / (2.0 - overlap)).astype(np.float32)

    def distances(self, start: int, end: int) -> torch.Tensor:
        """Re-ranked distances (end - start, G) float32 of query rows ``start .. end``."""
        end = min(end, self.num_query)
        jaccard = torch.from_numpy(self._jaccard(start, end))
        if self.lambda_value == 0:
            return jaccard
        base = self._base_distance(slice(start, end), slice(self.num_query, None))
        base /= self.row_max[start:end, None]
        return jaccard.mul_(1.0 - self.lambda_value).add_(base, alpha=self.lambda_value)

    __call__ = distances

    def dense(self) -> np.ndarray:
        """All re-ranked distances (Q, G) float32 (Q x G values in memory)."""
        return np.concatenate(
            [
                self.distances(s, s + self.chunk_size).numpy()
                for s in range(0, self.num_query, self.chunk_size)
            ]
        )


def re_ranking(
    query_features: torch.Tensor,
    gallery_features: torch.Tensor,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "euclidean",
) -> np.ndarray:
    """Re-ranked distance matrix (Q, G) float32; see :class:`KReciprocalDistance`."""
    return KReciprocalDistance(
        query_features, gallery_features, k1, k2, lambda_value, metric
    ).dense()
