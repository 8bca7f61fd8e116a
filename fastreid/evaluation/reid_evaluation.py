"""ReidEvaluator: rank metrics of query features against gallery features."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Dict, Optional

import torch

from fastreid.config import configurable

from .evaluator import EVALUATOR_REGISTRY, GatheringEvaluator, drop_unreadable, readable_rows
from .query_expansion import aqe
from .rank import (
    NoTrueMatchError,
    RankResult,
    evaluate_rank,
    evaluate_repeated_draws,
    evaluate_single_shot,
)
from .rerank import KReciprocalDistance
from .roc import DEFAULT_FPRS, RocAccumulator

__all__ = ["ReidEvaluator", "PROTOCOLS"]

logger = logging.getLogger(__name__)

PROTOCOLS = ("market", "cuhk03_single_shot", "repeated_draws")


@EVALUATOR_REGISTRY.register()
class ReidEvaluator(GatheringEvaluator):
    """Re-ID evaluation: the first ``num_query`` images are queries, the rest the gallery.

    Results (percentages): ``Rank-1``, ``Rank-5``, ``Rank-10``, ``mAP``, ``mINP``,
    ``metric`` = (Rank-1 + mAP) / 2 and, with ``roc``, ``TPR@FPR=1e-04`` / ``1e-03`` /
    ``1e-02``. In top-k mode (gallery above ``topk_gallery_limit``) a ``TopK`` entry says
    how many gallery entries per query were ranked. In distributed runs every process's
    features are gathered on the main process (the others return an empty dict), in the
    loader's order, so the metrics equal a single process's.

    Two doors: ``ReidEvaluator(num_query, metric="cosine", rerank=True, ...)`` and
    ``ReidEvaluator(cfg, num_query, output_dir)`` (TEST.* keys).
    """

    @configurable
    def __init__(
        self,
        num_query: int,
        output_dir: Optional[str] = None,
        *,
        metric: str = "cosine",
        protocol: str = "market",
        num_draws: int = 10,
        rerank: bool = False,
        rerank_k1: int = 20,
        rerank_k2: int = 6,
        rerank_lambda: float = 0.3,
        aqe: bool = False,
        aqe_times: int = 1,
        aqe_k: int = 5,
        aqe_alpha: float = 3.0,
        roc: bool = False,
        chunk_size: int = 512,
        topk_gallery_limit: int = 0,
        topk: int = 1000,
        seed: int = 0,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"Unknown TEST.PROTOCOL '{protocol}'; use one of {PROTOCOLS}.")
        self.num_query = int(num_query)
        self.output_dir = output_dir
        self.metric = metric
        self.protocol = protocol
        self.num_draws = num_draws
        self.rerank, self.rerank_k1, self.rerank_k2 = rerank, rerank_k1, rerank_k2
        self.rerank_lambda = rerank_lambda
        self.aqe, self.aqe_times, self.aqe_k, self.aqe_alpha = aqe, aqe_times, aqe_k, aqe_alpha
        self.roc = roc
        self.chunk_size = chunk_size
        self.topk_gallery_limit = topk_gallery_limit
        self.topk = topk
        self.seed = seed
        self.reset()

    @classmethod
    def from_config(cls, cfg, num_query: int, output_dir: Optional[str] = None) -> Dict:
        test = cfg.TEST
        return {
            "num_query": num_query,
            "output_dir": output_dir,
            "metric": test.METRIC,
            "protocol": test.PROTOCOL,
            "num_draws": test.NUM_DRAWS,
            "rerank": test.RERANK.ENABLED,
            "rerank_k1": test.RERANK.K1,
            "rerank_k2": test.RERANK.K2,
            "rerank_lambda": test.RERANK.LAMBDA,
            "aqe": test.AQE.ENABLED,
            "aqe_times": test.AQE.QE_TIME,
            "aqe_k": test.AQE.QE_K,
            "aqe_alpha": test.AQE.ALPHA,
            "roc": test.ROC.ENABLED,
            "chunk_size": test.CHUNK_SIZE,
            "topk_gallery_limit": test.TOPK_GALLERY_LIMIT,
            "topk": test.TOPK,
        }

    def check_test_set(self, test_set, dataset_name: str) -> None:
        """Before training: the test set has queries, a gallery and, under the Market-1501
        and CUHK03 protocols, at least one query with a true match (by labels only)."""
        items = list(getattr(test_set, "img_items", None) or [])
        num_gallery = len(items) - self.num_query
        where = f"Test set '{dataset_name}' (DATASETS.TESTS)"
        if self.num_query <= 0 or num_gallery <= 0:
            raise ValueError(
                f"{where} has {self.num_query} query and {max(num_gallery, 0)} gallery images; "
                "both must be non-empty. Check its folders, or remove it from DATASETS.TESTS."
            )
        if self.protocol == "repeated_draws":
            return
        cams_by_pid: Dict[object, set] = {}
        for _, pid, camid, *_ in items[self.num_query :]:
            cams_by_pid.setdefault(pid, set()).add(camid)
        for _, pid, camid, *_ in items[: self.num_query]:
            if isinstance(pid, int) and pid < 0:
                continue
            if cams_by_pid.get(pid, set()) - {camid}:
                return
        raise NoTrueMatchError(
            f"{where}: none of its {self.num_query} queries has a true match in the gallery "
            "(an image of the same identity from another camera), so no metric can be "
            "computed. Check its query/gallery folders and the pids/camids they yield."
        )

    def process(self, inputs: Dict, outputs: torch.Tensor) -> None:
        """Keep the batch's features (B, D) with its ``targets`` and ``camids`` (B,)."""
        for key in ("targets", "camids"):
            if key not in inputs:
                raise KeyError(f"ReidEvaluator needs '{key}' in each batch; got {sorted(inputs)}.")
        self.keep(
            features=outputs.float(),
            pids=torch.as_tensor(inputs["targets"]).reshape(-1).long(),
            camids=torch.as_tensor(inputs["camids"]).reshape(-1).long(),
            # Unreadable images (DATALOADER.SKIP_CORRUPT) are marked by the dataset; dropped later.
            corrupt=~readable_rows(inputs, len(outputs)),
        )

    def compute(self, collected: Dict[str, torch.Tensor]) -> OrderedDict[str, float]:
        features, pids, camids, corrupt = (
            collected[k] for k in ("features", "pids", "camids", "corrupt")
        )
        (features, pids, camids), num_query = drop_unreadable(
            ~corrupt, self.num_query, features, pids, camids
        )
        self.num_dropped = int(corrupt.sum())  # unreadable images left out
        if not 0 < num_query < len(features):
            raise ValueError(
                f"num_query={num_query} (readable) but {len(features)} images were evaluated; the "
                "loader must yield the query images first, then at least one gallery image."
            )
        if self.protocol == "repeated_draws":
            return self._evaluate_repeated_draws(features, pids)

        query, gallery = features[:num_query], features[num_query:]
        q_pids, g_pids = pids[:num_query], pids[num_query:]
        q_camids, g_camids = camids[:num_query], camids[num_query:]
        if self.aqe:
            logger.info(
                "Applying alpha query expansion (k=%d, alpha=%g).", self.aqe_k, self.aqe_alpha
            )
            query, gallery = aqe(
                query, gallery, self.aqe_times, self.aqe_k, self.aqe_alpha, self.chunk_size
            )
        distmat = None
        if self.rerank:
            logger.info(
                "Applying k-reciprocal re-ranking (k1=%d, k2=%d, lambda=%g).",
                self.rerank_k1,
                self.rerank_k2,
                self.rerank_lambda,
            )
            distmat = KReciprocalDistance(
                query,
                gallery,
                self.rerank_k1,
                self.rerank_k2,
                self.rerank_lambda,
                metric=self.metric,
                chunk_size=self.chunk_size,
            )
        common = dict(
            query_features=query,
            gallery_features=gallery,
            metric=self.metric,
            chunk_size=self.chunk_size,
        )
        roc = None
        if self.protocol == "cuhk03_single_shot":
            result = evaluate_single_shot(
                distmat, q_pids, g_pids, q_camids, g_camids, num_repeats=self.num_draws,
                seed=self.seed, **common,
            )  # fmt: skip
        else:
            topk_mode = distmat is None and 0 < self.topk_gallery_limit < len(gallery)
            if self.roc and topk_mode:
                logger.warning("TEST.ROC needs every pair; not computed in top-k mode.")
            elif self.roc:
                roc = RocAccumulator(q_pids, g_pids, q_camids, g_camids, DEFAULT_FPRS)
            result = evaluate_rank(
                distmat, q_pids, g_pids, q_camids, g_camids,
                topk_gallery_limit=self.topk_gallery_limit, topk=self.topk,
                on_chunk=roc.update if roc is not None else None, **common,
            )  # fmt: skip
        return self._format(result, roc)

    def _evaluate_repeated_draws(self, features, pids) -> OrderedDict[str, float]:
        if self.rerank or self.aqe:
            logger.warning("TEST.RERANK / TEST.AQE are ignored by the repeated_draws protocol.")
        result = evaluate_repeated_draws(
            features,
            pids,
            num_draws=self.num_draws,
            seed=self.seed,
            metric=self.metric,
            chunk_size=self.chunk_size,
        )
        return self._format(result, None)

    @staticmethod
    def _format(result: RankResult, roc: Optional[RocAccumulator]) -> OrderedDict[str, float]:
        results: OrderedDict[str, float] = OrderedDict()
        for k in (1, 5, 10):
            if k <= len(result.cmc):
                results[f"Rank-{k}"] = float(result.cmc[k - 1]) * 100
        results["mAP"] = result.mAP * 100
        results["mINP"] = result.mINP * 100
        results["metric"] = (float(result.cmc[0]) + result.mAP) / 2 * 100
        if roc is not None:
            for fpr, tpr in roc.compute().items():
                results[f"TPR@FPR={fpr:.0e}"] = tpr * 100
        if result.topk is not None:
            results["TopK"] = float(result.topk)
        return results
