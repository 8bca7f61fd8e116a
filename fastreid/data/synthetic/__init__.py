"""Synthetic data sets generated on the spot (deterministic for a seed).

``reid``: people seen by several cameras, in Market-1501 layout, with per-identity attributes.
Command line: ``python -m fastreid.data.synthetic --output DIR --num-ids 300 --seed 0``.
"""

from .reid import (
    ATTRIBUTE_NAMES,
    ATTRIBUTE_WRITERS,
    ensure_synthetic_dataset,
    generate_synthetic_dataset,
    main,
    register_attribute_writer,
    write_attribute_files,
)

__all__ = [
    "ATTRIBUTE_NAMES",
    "ATTRIBUTE_WRITERS",
    "ensure_synthetic_dataset",
    "generate_synthetic_dataset",
    "main",
    "register_attribute_writer",
    "write_attribute_files",
]
