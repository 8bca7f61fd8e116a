"""Saving and loading checkpoints: model, optimizer, schedulers, progress and RNG states.

* Writes are atomic (temporary file + ``os.replace``) and followed by an update of the
  ``last_checkpoint`` pointer, so a crash never leaves a truncated file behind.
* Loading uses ``torch.load(weights_only=True)``; a ``module.`` prefix from DDP is stripped and
  an optional ``key_mapper`` renames keys (the trainer and the predictor pass
  :func:`fastreid.modeling.compat.map_fastreid_state_dict` so FastReID checkpoints load; this
  module imports nothing from the rest of fastreid).
* Tensors whose shape differs from the model's (a classifier with another class count) are
  skipped and reported in a table, as are missing and unexpected keys — never silently.
  A checkpoint of another architecture (most tensors do not fit) is one clear error.
* State that differs per process (a sharded classifier and its optimizer) is saved by every
  process beside the main file, as ``<name>_rank{r}.pth`` (``per_rank_state``).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

from . import comm
from .errors import BadInputError
from .file_io import atomic_torch_save, atomic_write_text

__all__ = [
    "Checkpointer",
    "CheckpointError",
    "IncompatibleKeys",
    "KeyMapper",
    "load_checkpoint_file",
    "strip_module_prefix",
    "unwrap_model",
]

#: Renames the keys of a state dict (e.g. an older release's names to the current ones).
KeyMapper = Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]

LAST_CHECKPOINT = "last_checkpoint"
_PER_RANK_FILE = re.compile(r"_rank\d+\.pth$")
# Below this fraction of the backbone's weights matching the checkpoint by name and shape,
# the checkpoint is taken to come from another architecture.
_MIN_MATCHING_FRACTION = 0.9


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (else ``model``)."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


class IncompatibleKeys:
    """What did not load: keys missing from the checkpoint, keys the model does not have,
    and ``(key, checkpoint shape, model shape)`` for skipped shape mismatches."""

    def __init__(
        self,
        missing_keys: List[str],
        unexpected_keys: List[str],
        shape_mismatches: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]],
    ) -> None:
        self.missing_keys = missing_keys
        self.unexpected_keys = unexpected_keys
        self.shape_mismatches = shape_mismatches

    def __bool__(self) -> bool:
        return bool(self.missing_keys or self.unexpected_keys or self.shape_mismatches)

    def table(self) -> str:
        from tabulate import tabulate

        rows = [
            (k, "shape mismatch (skipped)", tuple(c), tuple(m)) for k, c, m in self.shape_mismatches
        ]
        rows += [(k, "missing in checkpoint", "", "") for k in self.missing_keys]
        rows += [(k, "not in model (ignored)", "", "") for k in self.unexpected_keys]
        return tabulate(rows, headers=["key", "problem", "checkpoint shape", "model shape"])


class CheckpointError(BadInputError, RuntimeError):
    """A file that is not a readable checkpoint; the message names the file and what to do."""


class CheckpointWriteError(BadInputError, OSError):
    """A checkpoint could not be written (disk full, permissions); names the file."""


def _torch_load_weights_only(path: str) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU, with errors naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Checkpoint '{path}' does not exist. Check MODEL.WEIGHTS (or the path given to "
            "--resume / Checkpointer.load); it must be a .pth file written by torch.save."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types here (KeyError on a text file, ...)
        raise CheckpointError(
            f"Could not read checkpoint '{path}' with torch.load(weights_only=True) "
            f"({type(e).__name__}: {e}). "
            "The file is truncated, not a PyTorch checkpoint, or stores Python objects other "
            "than tensors. If you trust its origin, re-save only its weights: "
            "torch.save({'model': torch.load(path, weights_only=False)['model']}, new_path)."
        ) from e
    return checkpoint


def load_checkpoint_file(path: str) -> Dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    Returns a dict with at least ``"model"`` (a bare state dict is wrapped as such).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is not a checkpoint ``weights_only`` loading accepts.
    """
    checkpoint = _torch_load_weights_only(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"Checkpoint '{path}' holds a {type(checkpoint).__name__}, not a dict of tensors."
        )
    if "model" not in checkpoint:
        if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            checkpoint = {"model": checkpoint}
        elif isinstance(checkpoint.get("state_dict"), dict):
            checkpoint = {"model": checkpoint["state_dict"]}
        else:
            raise CheckpointError(
                f"Checkpoint '{path}' has no 'model' entry (keys: {sorted(checkpoint)[:10]}); "
                "expected a fastreid/FastReID checkpoint or a bare state dict."
            )
    return checkpoint


def strip_module_prefix(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix DDP / DataParallel put on every key (if all keys have it)."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


class Checkpointer:
    """Saves and loads a model together with other objects that have a ``state_dict``.

    Example::

        checkpointer = Checkpointer(model, "logs/run", optimizer=opt, scheduler=sched)
        checkpointer.save("model_0009", epoch=9, iteration=1799)
        extra = checkpointer.resume_or_load("weights.pth", resume=True)

    Args:
        model: the model (a DDP wrapper is unwrapped).
        save_dir: folder for checkpoints and the ``last_checkpoint`` pointer.
        key_mapper: renames the keys of loaded model state dicts (after ``module.`` is
            stripped), e.g. ``fastreid.modeling.compat.map_fastreid_state_dict``.
        save_to_disk: write the main file (default: only on the main process).
        per_rank_state: objects whose state differs per process (a classifier shard and its
            optimizer); every process writes them to ``<name>_rank{r}.pth`` beside the main
            file and reads its own back, so :meth:`save` must then run on every process.
        **checkpointables: other objects with ``state_dict`` / ``load_state_dict``.
    """

    def __init__(
        self,
        model: nn.Module,
        save_dir: str = "",
        *,
        key_mapper: Optional[KeyMapper] = None,
        save_to_disk: Optional[bool] = None,
        per_rank_state: Optional[Dict[str, Any]] = None,
        **checkpointables: Any,
    ) -> None:
        self.model = unwrap_model(model)
        self.key_mapper = key_mapper
        self.save_dir = save_dir
        self.save_to_disk = comm.is_main_process() if save_to_disk is None else save_to_disk
        self.checkpointables: Dict[str, Any] = dict(checkpointables)
        self.per_rank_state: Dict[str, Any] = {}
        for name, obj in (per_rank_state or {}).items():
            self.add_checkpointable(name, obj, per_rank=True)
        self.logger = logging.getLogger(__name__)

    def add_checkpointable(self, name: str, obj: Any, *, per_rank: bool = False) -> None:
        """Register ``obj`` (with ``state_dict`` / ``load_state_dict``) under ``name``;
        ``per_rank`` stores it in each process's ``<checkpoint>_rank{r}.pth``."""
        if name in self.checkpointables or name in self.per_rank_state or name == "model":
            raise KeyError(f"A checkpointable named '{name}' is already registered.")
        (self.per_rank_state if per_rank else self.checkpointables)[name] = obj

    @staticmethod
    def per_rank_path(path: str, rank: Optional[int] = None) -> str:
        """``dir/model_0009.pth`` -> ``dir/model_0009_rank{rank}.pth`` (default: this rank)."""
        rank = comm.get_rank() if rank is None else rank
        return f"{os.path.splitext(path)[0]}_rank{rank}.pth"

    # -- saving -----------------------------------------------------------------------------
    def save(
        self, name: str, *, tag_last: bool = True, folder: Optional[str] = None, **extra: Any
    ) -> Optional[str]:
        """Write ``save_dir/name.pth`` atomically and point ``last_checkpoint`` at it (unless
        ``tag_last`` is False: model_best is a copy, not a step of the resume chain).

        ``folder`` writes to that folder instead of ``save_dir`` (with its own
        ``last_checkpoint``), e.g. a copy of the run's state handed to a search.
        ``extra`` entries (epoch, iteration, RNG states, ...) are stored alongside; they must
        be tensors, numbers, strings or containers of those. Returns the path (``None`` when
        this process does not save). With ``per_rank_state``, every process must call it.
        """
        folder = self.save_dir if folder is None else folder
        if not folder:
            return None
        path = os.path.join(folder, f"{name}.pth")
        if self.per_rank_state:
            shard = {key: obj.state_dict() for key, obj in self.per_rank_state.items()}
            shard["world_size"] = comm.get_world_size()
            self._write(shard, self.per_rank_path(path))
            # Every shard is on disk before last_checkpoint can point at the main file.
            comm.synchronize()
        if not self.save_to_disk:
            return None
        data: Dict[str, Any] = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(extra)
        self._write(data, path)
        if tag_last:
            atomic_write_text(os.path.join(folder, LAST_CHECKPOINT), os.path.basename(path))
        self.logger.info(f"Saved checkpoint to {path}")
        return path

    def _write(self, data: Dict[str, Any], path: str) -> None:
        try:
            atomic_torch_save(data, path)
        except (OSError, RuntimeError) as e:  # torch reports a failed write as RuntimeError
            raise CheckpointWriteError(
                f"Could not write checkpoint '{path}' ({type(e).__name__}: {e}). Earlier "
                "checkpoints are intact. Free disk space (or fix the permissions) in "
                f"'{self.save_dir}', or set OUTPUT_DIR to another folder, then rerun with "
                "--resume."
            ) from e

    def tag_last_checkpoint(self, basename: str) -> None:
        atomic_write_text(os.path.join(self.save_dir, LAST_CHECKPOINT), basename)

    # -- finding ----------------------------------------------------------------------------
    def has_checkpoint(self) -> bool:
        return bool(self.save_dir) and os.path.isfile(os.path.join(self.save_dir, LAST_CHECKPOINT))

    def get_checkpoint_file(self) -> str:
        """The path ``last_checkpoint`` points to ('' when there is none)."""
        try:
            with open(os.path.join(self.save_dir, LAST_CHECKPOINT), encoding="utf-8") as f:
                name = f.read().strip()
        except OSError:
            return ""
        return os.path.join(self.save_dir, name)

    def get_all_checkpoint_files(self) -> List[str]:
        """Main checkpoint files in ``save_dir`` (per-process ``*_rank{r}.pth`` excluded)."""
        return sorted(
            os.path.join(self.save_dir, f)
            for f in os.listdir(self.save_dir)
            if f.endswith(".pth")
            and not _PER_RANK_FILE.search(f)
            and os.path.isfile(os.path.join(self.save_dir, f))
        )

    def remove_stale_temporary_files(self) -> List[str]:
        """Delete the temporary files of saves that were interrupted (killed mid-write).

        Atomic saves write ``.<name>.<random>.tmp`` next to the target; a finished save
        renames it, so any left over belongs to a dead run. Returns the removed paths.
        """
        if not self.save_dir or not self.save_to_disk or not os.path.isdir(self.save_dir):
            return []
        removed = []
        for name in os.listdir(self.save_dir):
            if name.startswith(".") and name.endswith(".tmp"):
                path = os.path.join(self.save_dir, name)
                try:
                    os.remove(path)
                except OSError:
                    continue
                removed.append(path)
        if removed:
            self.logger.warning(
                f"Removed {len(removed)} temporary file(s) of interrupted saves in "
                f"'{self.save_dir}': {', '.join(os.path.basename(p) for p in removed)}"
            )
        return removed

    # -- loading ----------------------------------------------------------------------------
    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        """With ``resume`` and a ``last_checkpoint`` in ``save_dir``: load everything from it.
        Otherwise load the model weights only from ``path`` (nothing when ``path`` is empty).
        Returns the checkpoint's remaining entries (epoch, iteration, ...).

        Temporary files of interrupted saves are removed first. When the file
        ``last_checkpoint`` names is missing or truncated, the newest intact checkpoint in
        ``save_dir`` is resumed from instead, with a warning."""
        self.remove_stale_temporary_files()
        if resume and self.has_checkpoint():
            return self._resume_from_newest_intact()
        if resume:
            self.logger.info(f"No checkpoint to resume from in '{self.save_dir}'; starting anew.")
        return self.load(path, checkpointables=[])

    def _resume_from_newest_intact(self) -> Dict[str, Any]:
        named = self.get_checkpoint_file()
        # Only an unreadable (truncated, missing) main file falls back; any other problem of
        # a readable checkpoint (e.g. a missing per-process file) is reported as it is.
        try:
            checkpoint = load_checkpoint_file(named)
        except (CheckpointError, FileNotFoundError) as e:
            first_error = e
        else:
            self.logger.info(f"Loading checkpoint from {named}")
            return self._load_checkpoint(checkpoint, named, None)
        others = [p for p in self.get_all_checkpoint_files() if p != named]
        for candidate in sorted(others, key=os.path.getmtime, reverse=True):
            try:
                checkpoint = load_checkpoint_file(candidate)
            except CheckpointError:
                self.logger.warning(f"Checkpoint '{candidate}' is unreadable too; skipping it.")
                continue
            self.logger.warning(
                f"last_checkpoint names '{named}', which cannot be read ({first_error}); "
                f"resuming from the newest intact checkpoint, '{candidate}', instead."
            )
            return self._load_checkpoint(checkpoint, candidate, None)
        raise CheckpointError(
            f"Cannot resume from '{self.save_dir}': last_checkpoint names '{named}', which "
            f"cannot be read ({first_error}), and no other checkpoint there is intact. Start "
            "anew without --resume (or in another OUTPUT_DIR)."
        ) from first_error

    def load(self, path: str, checkpointables: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """Load the model (and the named checkpointables; default: all) from ``path``.

        Returns the entries not consumed (epoch, iteration, ...). An empty ``path`` loads
        nothing and returns ``{}``.
        """
        if not path:
            self.logger.info("No checkpoint given; the model keeps its initialisation.")
            return {}
        self.logger.info(f"Loading checkpoint from {path}")
        return self._load_checkpoint(load_checkpoint_file(path), path, checkpointables)

    def load_from(
        self,
        checkpoint: Dict[str, Any],
        source: str,
        checkpointables: Optional[Iterable[str]] = None,
    ) -> Dict[str, Any]:
        """:meth:`load` for a checkpoint already read by :func:`load_checkpoint_file` (so a
        caller that inspects it first reads the file once); ``source`` names it in messages.
        The ``model`` entry is consumed; returns the entries not consumed."""
        self.logger.info(f"Loading checkpoint from {source}")
        return self._load_checkpoint(dict(checkpoint), source, checkpointables)

    def _load_checkpoint(
        self, checkpoint: Dict[str, Any], path: str, checkpointables: Optional[Iterable[str]]
    ) -> Dict[str, Any]:
        incompatible = self.load_model_state(checkpoint.pop("model"), source=path)
        if incompatible:
            self.logger.warning(
                f"Some tensors of '{path}' were not loaded:\n{incompatible.table()}"
            )
        names = (
            list(self.checkpointables) + list(self.per_rank_state)
            if checkpointables is None
            else list(checkpointables)
        )
        known = sorted(self.checkpointables) + sorted(self.per_rank_state)
        for key in names:
            if key not in known:
                raise KeyError(f"Unknown checkpointable '{key}'; known: {known}")
        per_rank = [key for key in names if key in self.per_rank_state]
        if per_rank:
            self._load_per_rank(path, per_rank)
        for key in names:
            if key in self.per_rank_state:
                continue
            if key in checkpoint:
                self.logger.info(f"Loading {key} from {path}")
                self.checkpointables[key].load_state_dict(checkpoint.pop(key))
            else:
                self.logger.warning(
                    f"Checkpoint '{path}' has no '{key}' state; it keeps its current one."
                )
        return checkpoint

    def _load_per_rank(self, path: str, names: List[str]) -> None:
        shard_path = self.per_rank_path(path)
        if not os.path.isfile(shard_path):
            raise CheckpointError(
                f"Checkpoint '{path}' has no per-process file '{shard_path}' for rank "
                f"{comm.get_rank()}: it was written by fewer processes or without per-process "
                "state. Resume with the number of processes that wrote it, or start anew "
                "without --resume."
            )
        shard = _torch_load_weights_only(shard_path)
        saved_world = int(shard.get("world_size", comm.get_world_size()))
        if saved_world != comm.get_world_size():
            raise CheckpointError(
                f"'{shard_path}' was written by {saved_world} processes, this run has "
                f"{comm.get_world_size()}; per-process state (e.g. classifier shards) only "
                f"resumes with {saved_world} processes."
            )
        for key in names:
            if key not in shard:
                raise CheckpointError(f"'{shard_path}' has no '{key}' state (has {sorted(shard)}).")
            self.logger.info(f"Loading {key} from {shard_path}")
            self.per_rank_state[key].load_state_dict(shard[key])

    def load_model_state(
        self, state_dict: Dict[str, torch.Tensor], source: str = "state dict"
    ) -> IncompatibleKeys:
        """Load ``state_dict`` into the model non-strictly after key mapping, skipping tensors
        of the wrong shape. Raises ``ValueError`` when it clearly belongs to another model."""
        state_dict = strip_module_prefix(state_dict)
        if self.key_mapper is not None:
            state_dict = dict(self.key_mapper(state_dict))
        model_state = self.model.state_dict()
        mismatches = []
        for key in list(state_dict):
            if key in model_state and tuple(state_dict[key].shape) != tuple(model_state[key].shape):
                mismatches.append(
                    (key, tuple(state_dict[key].shape), tuple(model_state[key].shape))
                )
                del state_dict[key]
        # Judge the architecture on the backbone (heads legitimately differ, e.g. in the
        # class count), by the fraction of its elements the checkpoint provides.
        judged = [k for k in model_state if k.startswith("backbone.")] or list(model_state)
        total = sum(model_state[k].numel() for k in judged)
        covered = sum(model_state[k].numel() for k in judged if k in state_dict)
        if total and covered < _MIN_MATCHING_FRACTION * total:
            examples = ", ".join(k for k, _, _ in mismatches[:3]) or ", ".join(
                k for k in list(state_dict)[:3] if k not in model_state
            )
            raise ValueError(
                f"Checkpoint '{source}' does not fit this {type(self.model).__name__}: it provides "
                f"only {100.0 * covered / total:.0f}% of the weights of "
                f"{'its backbone' if judged[0].startswith('backbone.') else 'the model'} with the "
                f"right name and shape (e.g. {examples or 'no key in common'}). It was saved from "
                "another architecture; use weights trained with this config, or set "
                "MODEL.META_ARCHITECTURE / MODEL.BACKBONE.* to the checkpoint's."
            )
        result = self.model.load_state_dict(state_dict, strict=False)
        skipped = {k for k, _, _ in mismatches}
        missing = [k for k in result.missing_keys if k not in skipped]
        return IncompatibleKeys(missing, list(result.unexpected_keys), mismatches)
