"""yacs-based configuration with ``_BASE_`` inheritance and helpful key errors."""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import os
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import yaml
from yacs.config import CfgNode as _CfgNode
from yacs.config import _check_and_coerce_cfg_value_type

from .packaged import _not_found_message, packaged_config_file

BASE_KEY = "_BASE_"

# Keys that older FastReID recipes still write, and the key that replaced each. Their value
# is moved to the new key (FastReID's FastDistill Base-kd.yml still sets SOLVER.FP16_ENABLED).
RENAMED_KEYS = {"SOLVER.FP16_ENABLED": "SOLVER.AMP.ENABLED"}


class ConfigKeyError(KeyError):
    """A config key that does not exist; the message names the closest valid keys."""

    def __str__(self) -> str:  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""


class ConfigValueError(ValueError):
    """A config value of the wrong type; the message names the key and the expected type."""


class CfgNode(_CfgNode):
    """A yacs ``CfgNode`` that understands FastReID recipes.

    * ``_BASE_: path.yml`` in a YAML file is merged first, relative to that file, recursively.
    * Unknown keys raise :class:`ConfigKeyError` naming the closest valid keys.
    * ``with cfg.unfrozen(): ...`` changes a frozen config for a moment.
    """

    @contextlib.contextmanager
    def unfrozen(self) -> Iterator[CfgNode]:
        """Allow changes inside the block; the config is frozen again after it if it was before
        (also when the block raises)."""
        frozen = self.is_frozen()
        self.defrost()
        try:
            yield self
        finally:
            if frozen:
                self.freeze()

    @classmethod
    def load_yaml_with_base(
        cls, filename: str, allow_unsafe: bool = False, *, _chain: Tuple[str, ...] = ()
    ) -> Dict[str, Any]:
        """Load a YAML file, resolving ``_BASE_`` chains into one merged dict.

        A missing base names the file whose ``_BASE_`` points to it; a cycle names the chain.
        """
        if not os.path.isfile(filename):
            # Not here: the recipe of that name shipped with fastreid (an installed wheel run
            # from any folder, or a project recipe whose _BASE_ climbs to the core configs/).
            packaged = packaged_config_file(filename)
            if packaged is None:
                if _chain:
                    raise FileNotFoundError(
                        f"Config file '{_chain[-1]}' has _BASE_ '{filename}', which does not "
                        "exist (a relative _BASE_ is resolved from the folder of the file that "
                        "names it)."
                    )
                raise FileNotFoundError(_not_found_message(filename))
            if not _chain:
                print(
                    f"note: config file '{filename}' is not in this folder; using the recipe "
                    f"shipped with fastreid: {packaged}",
                    file=sys.stderr,
                )
            filename = packaged
        real = os.path.realpath(filename)
        if real in (os.path.realpath(f) for f in _chain):
            names = " -> ".join([*_chain, filename])
            raise ValueError(
                f"_BASE_ cycle in config files: {names}. Remove the _BASE_ that closes the loop."
            )
        with open(filename, encoding="utf-8") as f:
            try:
                cfg = yaml.safe_load(f)
            except yaml.YAMLError as e:
                if not allow_unsafe:
                    raise ValueError(f"Config file '{filename}' is not valid YAML: {e}") from e
                f.seek(0)
                cfg = yaml.unsafe_load(f)
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, dict):
            raise ValueError(f"Config file '{filename}' must hold a mapping of keys at top level.")

        base = cfg.pop(BASE_KEY, None)
        if base is None:
            return cfg
        base_path = os.path.expanduser(base)
        if not os.path.isabs(base_path):
            base_path = os.path.join(os.path.dirname(os.path.abspath(filename)), base_path)
        base_cfg = cls.load_yaml_with_base(
            base_path, allow_unsafe=allow_unsafe, _chain=(*_chain, filename)
        )
        _merge_dict_into(cfg, base_cfg)
        return base_cfg

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        loaded = self.load_yaml_with_base(cfg_filename, allow_unsafe=allow_unsafe)
        _apply_renamed_keys(loaded)
        self._check_keys(loaded, source=f"config file '{cfg_filename}'")
        self._coerce_numbers(loaded)
        self._check_types(loaded, source=f"config file '{cfg_filename}'")
        self.merge_from_other_cfg(type(self)(loaded))

    def merge_from_list(self, cfg_list: List[Any]) -> None:
        """Merge ``[KEY, VALUE, KEY, VALUE, ...]`` as given on the command line."""
        if len(cfg_list) % 2 != 0:
            raise ValueError(
                "Config overrides must come in KEY VALUE pairs; got an odd number of items: "
                f"{list(cfg_list)}"
            )
        pairs = []
        for key, value in zip(cfg_list[0::2], cfg_list[1::2]):
            key = RENAMED_KEYS.get(str(key), str(key))
            self._check_full_key(key, source="command-line override")
            value = _CfgNode._decode_cfg_value(value)
            value = _int_to_float(value, self._value_at(key))
            value = _str_to_list(value, self._value_at(key))
            self._check_value_type(key, value, source="command-line override")
            pairs += [key, value]
        super().merge_from_list(pairs)

    # -- key checks ---------------------------------------------------------------------------
    def all_keys(self, prefix: str = "") -> List[str]:
        keys = []
        for k, v in self.items():
            full = f"{prefix}{k}"
            keys.append(full)
            if isinstance(v, _CfgNode):
                keys.extend(v.all_keys(full + ".") if isinstance(v, CfgNode) else [])
        return keys

    def _unknown_key(self, full_key: str, source: str) -> ConfigKeyError:
        close = difflib.get_close_matches(full_key, self.all_keys(), n=3, cutoff=0.6)
        hint = f" Closest valid keys: {', '.join(close)}." if close else ""
        return ConfigKeyError(f"Unknown config key '{full_key}' in {source}.{hint}")

    def _check_full_key(self, full_key: str, source: str) -> None:
        node: Any = self
        for part in full_key.split("."):
            if not isinstance(node, _CfgNode):
                raise self._unknown_key(full_key, source)
            if part not in node:
                if node.is_new_allowed():
                    return
                raise self._unknown_key(full_key, source)
            node = node[part]

    def _check_keys(self, loaded: Dict[str, Any], source: str, prefix: str = "") -> None:
        node = self._node_at(prefix)
        for k, v in loaded.items():
            full = f"{prefix}{k}"
            if k not in node:
                if node.is_new_allowed():
                    continue
                raise self._unknown_key(full, source)
            if isinstance(v, dict) and isinstance(node[k], _CfgNode):
                self._check_keys(v, source, prefix=full + ".")

    def _check_types(self, loaded: Dict[str, Any], source: str, prefix: str = "") -> None:
        for k, v in loaded.items():
            full = f"{prefix}{k}"
            if isinstance(v, dict) and isinstance(self._value_at(full), _CfgNode):
                self._check_types(v, source, prefix=full + ".")
            else:  # yacs decodes strings like "(a, b)" before it compares types
                self._check_value_type(full, _CfgNode._decode_cfg_value(v), source)

    def _check_value_type(self, full_key: str, value: Any, source: str) -> None:
        """Raise :class:`ConfigValueError` when yacs would refuse ``value`` for ``full_key``."""
        default = self._value_at(full_key)
        if isinstance(default, _CfgNode):
            if not isinstance(value, dict):
                raise ConfigValueError(
                    f"Config key '{full_key}' in {source} is a group of keys "
                    f"({', '.join(list(default)[:4])}, ...), not a value; got {value!r}. "
                    f"Set one of its keys instead, e.g. {full_key}.{next(iter(default), '')}."
                )
            return
        try:
            _check_and_coerce_cfg_value_type(value, default, full_key.split(".")[-1], full_key)
        except ValueError:
            raise ConfigValueError(
                f"Config key '{full_key}' in {source} expects {_type_name(default)} "
                f"(default: {default!r}), got {value!r}."
            ) from None

    def _value_at(self, full_key: str) -> Any:
        node: Any = self
        for part in full_key.split("."):
            if not isinstance(node, _CfgNode) or part not in node:
                return None
            node = node[part]
        return node

    def _coerce_numbers(self, loaded: Dict[str, Any], prefix: str = "") -> None:
        """Let YAML write ``1`` where the default is the float ``1.0``, and a single string
        where the default is a list (FastReID's ``KD.MODEL_CONFIG: path``); yacs refuses both."""
        for k, v in loaded.items():
            full = f"{prefix}{k}"
            if isinstance(v, dict):
                self._coerce_numbers(v, prefix=full + ".")
            else:
                default = self._value_at(full)
                loaded[k] = _str_to_list(_int_to_float(v, default), default)

    def _node_at(self, prefix: str) -> _CfgNode:
        node: _CfgNode = self
        for part in filter(None, prefix.split(".")):
            node = node[part]
        return node


def _type_name(value: Any) -> str:
    names = {bool: "a boolean (True/False)", int: "an integer", float: "a number", str: "a string"}
    if isinstance(value, (list, tuple)):
        return "a list, e.g. [1, 2] or (a, b)"
    return names.get(type(value), f"a {type(value).__name__}")


def _int_to_float(value: Any, default: Any) -> Any:
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _str_to_list(value: Any, default: Any) -> Any:
    """A plain string given for a list-valued key becomes a one-element list."""
    if isinstance(default, (list, tuple)) and isinstance(value, str):
        decoded = _CfgNode._decode_cfg_value(value)
        return decoded if isinstance(decoded, (list, tuple)) else [value]
    return value


def _apply_renamed_keys(loaded: Dict[str, Any]) -> None:
    """Move the values of :data:`RENAMED_KEYS` in a loaded YAML dict to their new keys."""
    for old, new in RENAMED_KEYS.items():
        *old_path, old_leaf = old.split(".")
        node = loaded
        for part in old_path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or old_leaf not in node:
            continue
        value = node.pop(old_leaf)
        *new_path, new_leaf = new.split(".")
        target = loaded
        for part in new_path:
            target = target.setdefault(part, {})
        target[new_leaf] = value


def _merge_dict_into(src: Dict[str, Any], dst: Dict[str, Any]) -> None:
    """Recursively merge ``src`` into ``dst`` (``src`` wins)."""
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge_dict_into(v, dst[k])
        else:
            dst[k] = v


def get_cfg() -> CfgNode:
    """A fresh copy of the default config (see ``fastreid/config/defaults.py``)."""
    from .defaults import _C

    return _C.clone()


def configurable(init_func: Optional[Callable] = None, *, from_config: Optional[Callable] = None):
    """Give a class or function a second door that takes a config.

    On a class ``__init__`` (the class defines ``from_config(cls, cfg, ...)`` returning a dict of
    keyword arguments)::

        class Head(nn.Module):
            @configurable
            def __init__(self, *, feat_dim, num_classes): ...

            @classmethod
            def from_config(cls, cfg):
                return {"feat_dim": cfg.MODEL.BACKBONE.FEAT_DIM, ...}

        Head(feat_dim=2048, num_classes=751)  # explicit arguments
        Head(cfg)                             # from a config

    On a function, pass ``from_config=`` with the translating function.
    """
    if init_func is not None:
        if not (inspect.isfunction(init_func) and init_func.__name__ == "__init__"):
            raise TypeError("@configurable without arguments is only for a class __init__.")

        @functools.wraps(init_func)
        def wrapped_init(self, *args, **kwargs):
            if _called_with_cfg(*args, **kwargs):
                from_config_func = getattr(type(self), "from_config", None)
                if from_config_func is None:
                    raise AttributeError(
                        f"{type(self).__name__} is @configurable but defines no from_config()."
                    )
                explicit = _get_args_from_config(from_config_func, *args, **kwargs)
                init_func(self, **explicit)
            else:
                init_func(self, *args, **kwargs)

        return wrapped_init

    if from_config is None:
        raise TypeError("@configurable(from_config=...) needs the translating function.")

    def decorator(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapped(*args, **kwargs):
            if _called_with_cfg(*args, **kwargs):
                return func(**_get_args_from_config(from_config, *args, **kwargs))
            return func(*args, **kwargs)

        wrapped.from_config = from_config  # type: ignore[attr-defined]
        return wrapped

    return decorator


def _called_with_cfg(*args, **kwargs) -> bool:
    if args and isinstance(args[0], _CfgNode):
        return True
    return isinstance(kwargs.get("cfg"), _CfgNode)


def _get_args_from_config(from_config_func: Callable, *args, **kwargs) -> Dict[str, Any]:
    signature = inspect.signature(from_config_func)
    params = list(signature.parameters)
    if not params or params[0] != "cfg":
        raise TypeError(f"{from_config_func.__qualname__} must take 'cfg' as its first argument.")
    accepts_var_kw = any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
    )
    if accepts_var_kw:
        return from_config_func(*args, **kwargs)
    supported = set(params)
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in supported}
    result = from_config_func(*args, **kwargs)
    result.update(extra)  # explicit keyword arguments win over the config
    return result
