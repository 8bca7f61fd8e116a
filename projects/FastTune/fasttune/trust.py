"""Which search folders ``--resume`` trusts: those whose state files carry this user's signature.

Ray Tune continues a search by unpickling the folder's ``tuner.pkl``, its searcher state, the
``experiment_state-*.json`` files (which embed pickles) and each trial's ``params.pkl``. A
pickle runs code when it is loaded, so a folder copied from elsewhere, or edited by someone
else, must never reach Ray. FastTune therefore signs those files while a search runs and when
it stops: an HMAC-SHA256 of each file's name and bytes, under a random per-user key kept
outside every search folder (``$XDG_CONFIG_HOME/fastreid/fasttune.key``, by default
``~/.config/fastreid/fasttune.key``, created with mode 0600). ``--resume`` first checks every
such file against ``fasttune_signatures.json``; an unsigned, changed or foreign file stops it
with one error, before anything is unpickled.

Signed: every file directly in the search folder (except the results FastTune writes itself)
and every ``*.pkl`` below it. Trial checkpoints are not pickles Ray loads: FastTune reads them
itself with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from typing import Dict, Iterator, Optional, Tuple

from fastreid.utils.file_io import atomic_write_text

__all__ = [
    "SIGNATURE_FILE",
    "UntrustedSearchError",
    "key_path",
    "load_or_create_key",
    "sign_search_folder",
    "verify_search_folder",
]

SIGNATURE_FILE = "fasttune_signatures.json"
# What FastTune writes into the search folder itself (never loaded by Ray).
_OWN_FILES = {SIGNATURE_FILE, "results.csv", "results.json", "search_plot.png", "best_config.yaml"}


class UntrustedSearchError(ValueError):
    """A search folder ``--resume`` will not load (its state files are not signed by us)."""


def key_path() -> str:
    """``$XDG_CONFIG_HOME/fastreid/fasttune.key`` (``~/.config`` when the variable is unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "fastreid", "fasttune.key")


def load_or_create_key(create: bool = True) -> Optional[bytes]:
    """This user's signing key; created (0600, in a 0700 folder) when missing and ``create``.

    A key that other users may read or write is refused: anyone who can read it can forge a
    folder that ``--resume`` would load.
    """
    path = key_path()
    if not os.path.exists(path):
        if not create:
            return None
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another search created it meanwhile
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(secrets.token_hex(32) + "\n")
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedSearchError(f"The FastTune key '{path}' is not a regular file.")
    if info.st_mode & 0o077 or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        raise UntrustedSearchError(
            f"The FastTune key '{path}' is readable or writable by other users (or not yours); "
            f"run 'chmod 600 {path}' (or delete it: searches signed with it then cannot be "
            "continued)."
        )
    with open(path, encoding="ascii") as f:
        text = f.read().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise UntrustedSearchError(
            f"The FastTune key '{path}' is damaged; delete it (searches signed with it then "
            "cannot be continued)."
        )
    return key


def _state_files(folder: str) -> Iterator[Tuple[str, str]]:
    """(relative name, path) of every file Ray may unpickle when it continues the search."""
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and name not in _OWN_FILES and not name.endswith(".tmp"):
            yield name, path
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        if top == folder:
            continue
        for name in sorted(files):
            if name.endswith(".pkl"):
                path = os.path.join(top, name)
                yield os.path.relpath(path, folder).replace(os.sep, "/"), path


def _digest(key: bytes, name: str, path: str) -> str:
    mac = hmac.new(key, name.encode("utf-8") + b"\0", hashlib.sha256)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            mac.update(block)
    return mac.hexdigest()


class _Signer:
    """Re-signs only the files whose size or modification time changed since the last call."""

    def __init__(self, folder: str, key: bytes) -> None:
        self.folder = folder
        self.key = key
        self._seen: Dict[str, Tuple[int, int]] = {}
        self._signed: Dict[str, str] = {}

    def __call__(self) -> bool:
        if not os.path.isdir(self.folder):
            return False
        current: Dict[str, str] = {}
        changed = False
        for name, path in _state_files(self.folder):
            try:
                info = os.stat(path)
            except FileNotFoundError:  # replaced while we looked; the next call signs it
                continue
            mark = (info.st_size, info.st_mtime_ns)
            if self._seen.get(name) != mark or name not in self._signed:
                self._signed[name] = _digest(self.key, name, path)
                self._seen[name] = mark
                changed = True
            current[name] = self._signed[name]
        if changed or set(current) != set(self._signed):
            self._signed = current
            self._seen = {k: v for k, v in self._seen.items() if k in current}
            atomic_write_text(
                os.path.join(self.folder, SIGNATURE_FILE),
                json.dumps({"format": 1, "hmac_sha256": current}, indent=1, sort_keys=True),
            )
        return changed


def sign_search_folder(folder: str) -> None:
    """Sign every state file now in ``folder`` with this user's key."""
    _Signer(folder, load_or_create_key())()


def verify_search_folder(folder: str) -> None:
    """Raise :class:`UntrustedSearchError` unless every state file in ``folder`` carries a
    valid signature made with this user's key. Reads bytes only; unpickles nothing."""
    trusted = (
        "--resume continues only searches this user's FastTune wrote on a machine holding "
        f"the same key ({key_path()}). Run the search anew in another OUTPUT_DIR or TUNE.NAME"
    )
    sig_path = os.path.join(folder, SIGNATURE_FILE)
    try:
        with open(sig_path, encoding="utf-8") as f:
            signed = json.load(f)["hmac_sha256"]
        if not isinstance(signed, dict):
            raise TypeError
    except FileNotFoundError:
        raise UntrustedSearchError(
            f"--resume: '{folder}' has no {SIGNATURE_FILE}, so it was not written by FastTune "
            f"(or by a version that signs its state). {trusted}."
        ) from None
    except (ValueError, KeyError, TypeError):
        raise UntrustedSearchError(
            f"--resume: '{sig_path}' is not a FastTune signature file. {trusted}."
        ) from None
    key = load_or_create_key(create=False)
    if key is None:
        raise UntrustedSearchError(
            f"--resume: cannot verify '{folder}': there is no FastTune key on this machine. "
            f"{trusted}."
        )
    for name, path in _state_files(folder):
        expected = signed.get(name)
        if not isinstance(expected, str) or not hmac.compare_digest(
            expected, _digest(key, name, path)
        ):
            what = "is not signed" if expected is None else "was changed after FastTune signed it"
            raise UntrustedSearchError(
                f"--resume: '{os.path.join(folder, name)}' {what}; Ray would run code from it, "
                f"so the search is not continued. {trusted}."
            )
