"""The search space: config keys mapped to distributions, read from YAML and checked against
the config before any trial starts.

Each entry of ``TUNE.SPACE`` (or of the file ``TUNE.SPACE_FILE``) is ``KEY: [DIST, ARGS...]``:

=================================  ===========================================================
``[choice, [a, b, ...]]``          one of the values (any type the key accepts, lists too)
``[uniform, low, high]``           a float in [low, high]
``[loguniform, low, high]``        a float whose log is uniform in [log low, log high], low > 0
``[randint, low, high]``           an integer in [low, high) (high excluded, as in Ray, numpy)
``[quniform, low, high, q]``       uniform in [low, high], rounded to a multiple of q
=================================  ===========================================================

The mapping form ``KEY: {DIST: [ARGS...]}`` is accepted as well in a ``TUNE.SPACE_FILE``.
Float distributions need a float key; an integer key takes ``choice``, ``randint`` or
``quniform`` with integer bounds and step. Ray is imported only by :meth:`Param.to_ray`.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import yaml

from fastreid.config import CfgNode

__all__ = [
    "DISTRIBUTIONS",
    "FASTREID_SPACE",
    "Param",
    "apply_params",
    "parse_space",
    "space_from_cfg",
]

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint", "quniform")
_FORMS = (
    "[choice, [a, b, ...]], [uniform, low, high], [loguniform, low, high], "
    "[randint, low, high] or [quniform, low, high, q]"
)

# FastReID's FastTune space: global batch size and images per identity.
FASTREID_SPACE: Dict[str, List[Any]] = {
    "SOLVER.IMS_PER_BATCH": ["choice", [64, 96, 128, 160, 224, 256]],
    "DATALOADER.NUM_INSTANCE": ["choice", [2, 4, 8, 16, 32]],
}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_integral(x: Any) -> bool:
    return _is_number(x) and float(x) == int(x)


def _encode(value: Any) -> Any:
    """Searchers handle scalars only; a list value travels as its YAML text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return yaml.safe_dump(_plain(value), default_flow_style=True).strip()


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Param:
    """One searched config key: its distribution and how a sampled value goes into the cfg."""

    key: str
    dist: str
    args: Tuple[Any, ...]
    default: Any  # the config's current value (gives the type)

    def to_ray(self) -> Any:
        """The Ray Tune domain (``tune.choice``, ``tune.loguniform``, ...)."""
        from ray import tune

        if self.dist == "choice":
            return tune.choice([_encode(v) for v in self.args])
        return getattr(tune, self.dist)(*self.args)

    def to_pbt(self) -> Any:
        """What PBT's explore step perturbs: the list of choices (it moves to a neighbour) or
        the domain (it scales the value by 0.8 / 1.2 or resamples; :meth:`decode` clips)."""
        if self.dist == "choice":
            return [_encode(v) for v in self.args]
        return self.to_ray()

    def decode(self, sampled: Any) -> Any:
        """The config value for a value the searcher proposed. Numbers are clipped to the
        range and rounded to the step (PBT's perturbations can leave both)."""
        if self.dist == "choice":
            for v in self.args:
                if _encode(v) == sampled or (
                    _is_number(v) and _is_number(sampled) and v == sampled
                ):
                    return v
            raise ValueError(
                f"TUNE.SPACE: {sampled!r} is not one of the choices for {self.key} {list(self.args)}."
            )
        low, high = self.args[0], self.args[1]
        value = float(sampled)
        if self.dist == "randint":
            value = float(min(max(round(value), low), high - 1))
        elif self.dist == "quniform":
            q = self.args[2]
            value = min(max(round(value / q) * q, low), high)
        else:
            value = min(max(value, low), high)
        if isinstance(self.default, int) and not isinstance(self.default, bool):
            return int(round(value))
        return value

    def encode_point(self, value: Any, where: str) -> Any:
        """``value`` (a config value given by the user) as the searcher proposes it; an error
        naming ``where`` when the distribution cannot produce it."""
        value = _plain(value)
        if self.dist == "choice":
            for v in self.args:
                if _encode(v) == _encode(value) or (
                    _is_number(v) and _is_number(value) and v == value
                ):
                    return _encode(v)
            raise ValueError(
                f"{where}: {self.key}={value!r} is not one of its choices {list(self.args)}."
            )
        low, high = self.args[0], self.args[1]
        inside = _is_number(value) and (
            low <= value < high if self.dist == "randint" else low <= value <= high
        )
        if not inside or (self.dist == "randint" and not _is_integral(value)):
            raise ValueError(
                f"{where}: {self.key}={value!r} is outside {self.describe().split(': ', 1)[1]}."
            )
        return int(value) if self.dist == "randint" else float(value)

    def describe(self) -> str:
        return f"{self.key}: {self.dist}{list(self.args)}"


def _check_key(cfg: CfgNode, key: str, source: str) -> Any:
    """The current value of ``key`` in ``cfg``; a clear error for keys that cannot be searched."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"{source}: keys must be config keys such as SOLVER.BASE_LR, got {key!r}.")
    if key.startswith("TUNE.") or key == "TUNE" or key == "OUTPUT_DIR":
        raise ValueError(f"{source}: {key} cannot be searched (it configures the search itself).")
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            close = difflib.get_close_matches(key, cfg.all_keys(), n=3, cutoff=0.6)
            hint = f" Closest valid keys: {', '.join(close)}." if close else ""
            raise KeyError(f"Unknown config key '{key}' in {source}.{hint}")
        node = node[part]
    if isinstance(node, CfgNode):
        raise ValueError(
            f"{source}: '{key}' is a group of keys, not a value; search one of its keys, "
            f"e.g. {key}.{next(iter(node), '')}."
        )
    return node


def _value_fits(value: Any, default: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return _is_number(value)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _parse_entry(cfg: CfgNode, key: str, spec: Any, source: str) -> Param:
    default = _check_key(cfg, key, source)
    where = f"{source}, key {key}"
    if isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], str):
        dist = spec[0]
        args = spec[1] if dist == "choice" and len(spec) == 2 else spec[1:]
        if dist == "choice" and len(spec) != 2:
            raise ValueError(f"{where}: write choice as [choice, [a, b, ...]]; got {spec!r}.")
    elif isinstance(spec, Mapping) and len(spec) == 1:
        dist, args = next(iter(spec.items()))
    else:
        raise ValueError(f"{where}: a distribution must be one of {_FORMS}; got {spec!r}.")
    if dist not in DISTRIBUTIONS:
        raise ValueError(
            f"{where}: unknown distribution '{dist}'; use one of {', '.join(DISTRIBUTIONS)}."
        )
    if not isinstance(args, (list, tuple)):
        raise ValueError(f"{where}: choice takes a list of values, [choice, [a, b]]; got {args!r}.")
    args = tuple(_plain(a) for a in args)
    is_int_key = isinstance(default, int) and not isinstance(default, bool)

    if dist == "choice":
        if not args:
            raise ValueError(f"{where}: choice needs at least one value.")
        for v in args:
            if not _value_fits(v, default):
                raise ValueError(
                    f"{where}: choice value {v!r} does not fit the key, whose value is "
                    f"{default!r} ({type(default).__name__})."
                )
        if len({repr(_encode(v)) for v in args}) != len(args):
            raise ValueError(f"{where}: choice lists a value twice: {list(args)}.")
        return Param(key, dist, args, default)

    needed = 3 if dist == "quniform" else 2
    if len(args) != needed or not all(_is_number(a) for a in args):
        form = "low, high, q" if dist == "quniform" else "low, high"
        raise ValueError(
            f"{where}: write {dist} as [{dist}, {form}] ({needed} numbers); got {list(args)}."
        )
    low, high = args[0], args[1]
    if not low < high:
        raise ValueError(f"{where}: {dist} needs low < high; got low={low}, high={high}.")
    if not (is_int_key or isinstance(default, float) or default is None):
        raise ValueError(
            f"{where}: {dist} gives numbers but the key holds {default!r} "
            f"({type(default).__name__}); use choice."
        )
    if dist == "loguniform" and low <= 0:
        raise ValueError(f"{where}: loguniform needs low > 0; got low={low}.")
    if dist == "quniform" and args[2] <= 0:
        raise ValueError(f"{where}: quniform needs a step q > 0; got q={args[2]}.")
    if is_int_key:
        integral = dist == "randint" or (dist == "quniform" and all(map(_is_integral, args)))
        if not integral:
            raise ValueError(
                f"{where}: the key is an integer (now {default}) but {dist}{list(args)} gives "
                "fractions; use randint, choice, or quniform with integer bounds and step."
            )
    if dist == "randint":
        if not (_is_integral(low) and _is_integral(high)):
            raise ValueError(f"{where}: randint takes integer bounds; got {list(args)}.")
        args = (int(low), int(high))
    else:
        args = tuple(float(a) for a in args)
    return Param(key, dist, args, default)


def parse_space(cfg: CfgNode, space: Mapping[str, Any], source: str = "TUNE.SPACE") -> List[Param]:
    """Check every entry of ``space`` against ``cfg`` and return the searched parameters."""
    if not isinstance(space, Mapping):
        raise ValueError(f"{source} must map config keys to distributions; got {space!r}.")
    return [_parse_entry(cfg, str(k), v, source) for k, v in space.items()]


def _to_plain_dict(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _to_plain_dict(v) for k, v in node.items()}
    return node


def space_from_cfg(cfg: CfgNode) -> List[Param]:
    """The space a config asks for: ``TUNE.SPACE_FILE`` if set, else ``TUNE.SPACE``, else
    FastReID's batch-size / instances-per-id space."""
    path = str(cfg.TUNE.SPACE_FILE)
    if path:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"TUNE.SPACE_FILE '{path}' does not exist.")
        with open(path, encoding="utf-8") as f:
            try:
                loaded = yaml.safe_load(f)
            except yaml.YAMLError as e:
                raise ValueError(f"TUNE.SPACE_FILE '{path}' is not valid YAML: {e}") from e
        if isinstance(loaded, Mapping) and set(loaded) == {"TUNE"}:
            loaded = (loaded["TUNE"] or {}).get("SPACE", {})
        params = parse_space(cfg, loaded or {}, source=f"TUNE.SPACE_FILE '{path}'")
    elif len(cfg.TUNE.SPACE):
        params = parse_space(cfg, _to_plain_dict(cfg.TUNE.SPACE))
    else:
        params = parse_space(cfg, FASTREID_SPACE, source="the default space")
    if not params:
        raise ValueError(f"The search space in '{path}' is empty; list at least one key.")
    return params


def apply_params(cfg: CfgNode, params: Sequence[Param], sampled: Mapping[str, Any]) -> CfgNode:
    """A copy of ``cfg`` with the sampled values written into their keys."""
    out = cfg.clone()
    out.defrost()
    pairs: List[Any] = []
    for p in params:
        if p.key in sampled:
            pairs += [p.key, p.decode(sampled[p.key])]
    out.merge_from_list(pairs)
    return out
