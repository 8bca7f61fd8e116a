"""The dataset registry (kept apart so dataset files can import it without cycles)."""

from fastreid.utils.registry import Registry

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = (
    """Registered dataset classes, built as ``cls(root=..., combineall=...)``."""
)
