"""A name -> object table used by every extension point (datasets, backbones, heads, ...)."""

from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple


class Registry:
    """Maps names to classes or functions so configs can refer to them by string.

    Register with a decorator::

        BACKBONE_REGISTRY = Registry("BACKBONE")

        @BACKBONE_REGISTRY.register()
        def build_resnet_backbone(cfg): ...

    or directly: ``BACKBONE_REGISTRY.register(obj)`` / ``register(obj, name="alias")``.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: Dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._name

    def _do_register(self, name: str, obj: Any) -> None:
        if name in self._obj_map and self._obj_map[name] is not obj:
            raise KeyError(
                f"An object named '{name}' is already registered in the '{self._name}' registry; "
                "pick another name."
            )
        self._obj_map[name] = obj

    def register(self, obj: Any = None, name: Optional[str] = None) -> Any:
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable as a decorator."""
        if obj is None:

            def decorator(func_or_class: Callable) -> Callable:
                self._do_register(name or func_or_class.__name__, func_or_class)
                return func_or_class

            return decorator
        self._do_register(name or obj.__name__, obj)
        return obj

    def get(self, name: str) -> Any:
        obj = self._obj_map.get(name)
        if obj is None:
            close = difflib.get_close_matches(str(name), self._obj_map.keys(), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise KeyError(
                f"No object named '{name}' in the '{self._name}' registry.{hint} "
                f"Registered names: {', '.join(sorted(self._obj_map)) or '(none)'}."
            )
        return obj

    def names(self) -> List[str]:
        return sorted(self._obj_map)

    def __contains__(self, name: object) -> bool:
        return name in self._obj_map

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        return iter(self._obj_map.items())

    def __len__(self) -> int:
        return len(self._obj_map)

    def __repr__(self) -> str:
        return f"Registry(name={self._name!r}, names={self.names()})"
