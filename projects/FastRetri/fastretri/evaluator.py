"""RetriEvaluator: Recall@K for TEST.RECALLS and MAP@R, query-gallery or self-retrieval."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Dict, Optional, Sequence

import torch

from fastreid.config import configurable
from fastreid.evaluation import (
    EVALUATOR_REGISTRY,
    GatheringEvaluator,
    drop_unreadable,
    readable_rows,
)
from fastreid.evaluation.rank import NoTrueMatchError
from fastreid.utils.errors import BadInputError

from .metrics import retrieval_metrics

__all__ = ["RetriEvaluator", "TestSetError"]

logger = logging.getLogger("fastreid.projects.fastretri")  # under fastreid: reaches log.txt


class TestSetError(BadInputError, ValueError):
    """A retrieval test set that cannot give the configured metrics (named in the text)."""

    __test__ = False  # not a pytest class


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

    def check_test_set(self, test_set: Any, dataset_name: str) -> None:
        """Before training (the core trainer calls it for every DATASETS.TESTS entry): a K of
        TEST.RECALLS larger than the candidates a query is ranked against, an empty query
        or gallery, or a test set where no query has a relevant image is one error now, not
        a failure or a score of 0 after training."""
        items = list(getattr(test_set, "img_items", None) or [])
        if not items:
            return  # not an item dataset: evaluate() checks what it gets
        where = f"Test set '{dataset_name}' (DATASETS.TESTS)"
        self_retrieval = self.num_query == len(items)
        num_candidates = len(items) - 1 if self_retrieval else len(items) - self.num_query
        if self.num_query < 1 or num_candidates < 1:
            raise TestSetError(
                f"{where} has {self.num_query} queries and {max(num_candidates, 0)} images to "
                "rank them against; both must be non-empty. Check its folders, or remove it "
                "from DATASETS.TESTS."
            )
        too_large = [k for k in self.recalls if k > num_candidates or k < 1]
        if too_large:
            what = "the other test images" if self_retrieval else "the gallery"
            raise TestSetError(
                f"TEST.RECALLS has {too_large}, but each query of {where} is ranked against "
                f"only {num_candidates} candidates ({what}); use values from 1 to "
                f"{num_candidates}."
            )
        labels = [item[1] for item in items]
        if self_retrieval:
            seen, relevant = set(), False
            for label in labels:
                if label in seen:
                    relevant = True
                    break
                seen.add(label)
        else:
            gallery = set(labels[self.num_query :])
            relevant = any(label in gallery for label in labels[: self.num_query])
        if not relevant:
            raise NoTrueMatchError(
                f"{where}: none of its {self.num_query} queries has a relevant image (one of "
                "the same class) among the images it is ranked against, so Recall@K and MAP@R "
                "would be 0 and best-model selection meaningless. Check its class labels."
            )

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
        if no_match >= num_query:
            raise NoTrueMatchError(
                f"None of the {num_query} evaluated queries has a relevant image (one of the "
                "same class) to retrieve: Recall@K and MAP@R are undefined. Check the test "
                "set's class labels."
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
