"""Printing and checking evaluation results."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Mapping

from tabulate import tabulate

__all__ = ["print_csv_format", "results_table"]

logger = logging.getLogger(__name__)


def results_table(results: Mapping[str, float], title: str = "") -> str:
    """The results as a one-row pipe table (``title`` fills the first column when given)."""
    if not results:
        return ""
    metrics = list(results.items())
    headers = (["Dataset"] if title else []) + [name for name, _ in metrics]
    row = ([title] if title else []) + [value for _, value in metrics]
    return tabulate([row], headers=headers, tablefmt="pipe", floatfmt=".2f", numalign="left")


def print_csv_format(results: Mapping[str, float]) -> str:
    """Log ``results`` as a table (logger ``fastreid.evaluation.testing``) and return it.

    ``results`` is either ``{metric: value}`` or ``{dataset_name: {metric: value}}``.
    """
    if results and all(isinstance(value, Mapping) for value in results.values()):
        tables = [results_table(inner, title=name) for name, inner in results.items()]
        table = "\n\n".join(tables)
    else:
        table = results_table(OrderedDict(results))
    logger.info("Evaluation results in csv format:\n%s", table)
    return table
