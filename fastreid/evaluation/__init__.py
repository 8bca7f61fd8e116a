"""Evaluation: evaluators, rank metrics, re-ranking, query expansion and ROC figures."""

from .build import build_evaluator
from .distance import pairwise_distance
from .evaluator import (
    EVALUATOR_REGISTRY,
    DatasetEvaluator,
    DatasetEvaluators,
    GatheringEvaluator,
    drop_unreadable,
    inference_on_dataset,
    readable_rows,
    warn_dropped,
)
from .knn import KNN_BACKENDS, nearest_neighbors, resolve_knn_backend
from .query_expansion import aqe
from .rank import (
    RankResult,
    evaluate_rank,
    evaluate_repeated_draws,
    evaluate_single_shot,
    topk_search,
)
from .reid_evaluation import ReidEvaluator
from .rerank import KReciprocalDistance, re_ranking
from .roc import RocAccumulator, roc_curve_points, tpr_at_fpr
from .testing import print_csv_format, results_table

__all__ = [
    "EVALUATOR_REGISTRY",
    "DatasetEvaluator",
    "DatasetEvaluators",
    "GatheringEvaluator",
    "KNN_BACKENDS",
    "KReciprocalDistance",
    "RankResult",
    "ReidEvaluator",
    "RocAccumulator",
    "aqe",
    "build_evaluator",
    "drop_unreadable",
    "evaluate_rank",
    "evaluate_repeated_draws",
    "evaluate_single_shot",
    "inference_on_dataset",
    "nearest_neighbors",
    "pairwise_distance",
    "print_csv_format",
    "re_ranking",
    "readable_rows",
    "resolve_knn_backend",
    "results_table",
    "roc_curve_points",
    "topk_search",
    "tpr_at_fpr",
    "warn_dropped",
]
