"""Optional packages of the ``[deploy]`` extra: see :mod:`fastreid.utils.dependencies`."""

from fastreid.utils.dependencies import MissingDependencyError, require

__all__ = ["MissingDependencyError", "require"]
