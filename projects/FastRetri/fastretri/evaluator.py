"""RetriEvaluator: Recall@K for TEST.RECALLS and MAP@R, query-gallery or self-retrieval."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import torch

from fastreid.config import configurable
from fastreid.evaluation import (
    EVALUATOR_REGISTRY,
    GatheringEvaluator,
    drop_unreadable,
    readable_rows,
)

from .metrics import retrieval_metrics

__all__ = ["RetriEvaluator"]

logger = logging.getLogger("fastreid.projects.fastretri")  # under fastreid: reaches log.txt


@EVALUATOR_REGISTRY.register()
class RetriEvaluator(GatheringEvaluator):
    """Image retrieval by cosine similarity of the model's features.

    The first ``num_query`` images are queries, the rest the gallery; when every image is a
    query (CUB, Cars196, SOP: the test split alone) each image is searched against all the
    others (itself excluded by index). Results (percent): ``Recall@K`` for each K of
    ``recalls``, ``MAP@R``, and ``metric`` = Recall@recalls[0]. Features are gathered from
    every process; other processes return an empty dict.

    Two doors: ``RetriEvaluator(num_query, recalls=(1, 2, 4, 8))`` and
    ``RetriEvaluator(cfg, num_query, output_dir)`` (TEST.RECALLS, TEST.RETRIEVAL_BACKEND).
    """

    @configurable
    def __init__(
        self,
        num_query: int,
        output_dir: Optional[str] = None,
        *,
        recalls: Sequence[int] = (1, 2, 4, 8, 16, 32),
        backend: str = "auto",
        chunk_size: int = 256,
    ) -> None:
        if not recalls:
            raise ValueError("TEST.RECALLS is empty; give at least one K, e.g. [1, 2, 4, 8].")
        self.num_query = int(num_query)
        self.output_dir = output_dir
        self.recalls = [int(k) for k in recalls]
        self.backend = backend
        self.chunk_size = int(chunk_size)
        self.reset()

    @classmethod
    def from_config(cls, cfg, num_query: int, output_dir: Optional[str] = None) -> Dict:
        test = cfg.TEST
        if "RECALLS" not in test:
            raise KeyError(
                "TEST.RECALLS is not in the config: call "
                "projects.FastRetri.fastretri.add_retri_config(cfg) before merging the file."
            )
        return {
            "num_query": num_query,
            "output_dir": output_dir,
            "recalls": list(test.RECALLS),
            "backend": test.get("RETRIEVAL_BACKEND", "auto"),
            "chunk_size": test.CHUNK_SIZE,
        }

    def process(self, inputs: Dict, outputs: torch.Tensor) -> None:
        """Keep the batch's features (B, D) and ``targets`` (B,)."""
        if "targets" not in inputs:
            raise KeyError(f"RetriEvaluator needs 'targets' in each batch; got {sorted(inputs)}.")
        self.keep(
            features=outputs.float(),
            labels=torch.as_tensor(inputs["targets"]).reshape(-1).long(),
            # Unreadable images (DATALOADER.SKIP_CORRUPT) are marked by the dataset; dropped later.
            readable=readable_rows(inputs, len(outputs)),
        )

    def compute(self, collected: Dict[str, torch.Tensor]) -> OrderedDict[str, float]:
        feats, labs, keep = collected["features"], collected["labels"], collected["readable"]
        if self.num_query < 1 or self.num_query > len(feats):
            raise ValueError(f"num_query={self.num_query} but {len(feats)} images were evaluated.")
        self_retrieval = self.num_query == len(feats)
        (feats, labs), num_query = drop_unreadable(keep, self.num_query, feats, labs)
        if self_retrieval:
            args = (feats, labs, None, None)
        else:
            if not 0 < num_query < len(feats):
                raise ValueError(
                    f"After dropping unreadable images {num_query} queries and "
                    f"{len(feats) - num_query} gallery images are left; nothing to retrieve."
                )
            q = num_query
            args = (feats[:q], labs[:q], feats[q:], labs[q:])
        metrics, no_match = retrieval_metrics(
            *args, recalls=self.recalls, chunk_size=self.chunk_size, backend=self.backend
        )
        if no_match:
            logger.info(
                "%d of %d queries have no relevant gallery image (counted as misses in Recall@K, "
                "left out of MAP@R).",
                no_match,
                num_query,
            )
        results: OrderedDict[str, float] = OrderedDict(metrics)
        results["metric"] = metrics[f"Recall@{self.recalls[0]}"]
        return results
