"""Synthetic data sets generated on the spot (deterministic for a seed).

``reid``: people seen by several cameras, in Market-1501 layout, with per-identity attributes.
Command line: ``python -m fastreid.data.synthetic --output DIR --num-ids 300 --seed 0``.
"""

from .reid import (
    ATTRIBUTE_NAMES,
    MARKET_ATTRIBUTE_FILE,
    MARKET_FIELDS,
    ensure_synthetic_dataset,
    generate_synthetic_dataset,
    main,
    write_market_attribute_mat,
)

__all__ = [
    "ATTRIBUTE_NAMES",
    "MARKET_ATTRIBUTE_FILE",
    "MARKET_FIELDS",
    "ensure_synthetic_dataset",
    "generate_synthetic_dataset",
    "main",
    "write_market_attribute_mat",
]
