"""Command-line config overrides, the same way in every tool.

``tool --config-file X KEY VALUE ...`` (FastReID's train_net.py style) and
``tool --config-file X --opts KEY VALUE ...`` (its deploy tools' style) both work, and may be
mixed; the tool reads all of them, in order, from ``args.opts``.
"""

from __future__ import annotations

import argparse
from typing import Dict, Optional, Sequence, Tuple

__all__ = ["ConfigArgumentParser"]

_OPTS_FLAG = "--opts"
_OPTS_AFTER_FLAG = "_opts_after_flag"


class ConfigArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose ``args.opts`` collects config overrides given as trailing
    ``KEY VALUE`` pairs and/or after ``--opts``.

    Args:
        trailing_flags: ``store_true`` flags (e.g. ``{"--resume": "resume"}``) that are also
            recognised when written after the overrides, where argparse would otherwise take
            them for override values.
        *args, **kwargs: as for ``argparse.ArgumentParser``.

    The overrides are a trailing positional argument, so tools built on this parser take no
    other positional arguments.
    """

    def __init__(self, *args, trailing_flags: Optional[Dict[str, str]] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._trailing_flags = dict(trailing_flags or {})
        self.add_argument(
            _OPTS_FLAG,
            dest=_OPTS_AFTER_FLAG,
            default=[],
            nargs=argparse.REMAINDER,
            metavar="KEY VALUE",
            help="config overrides, e.g. --opts MODEL.WEIGHTS model_final.pth (trailing "
            "KEY VALUE pairs without --opts work too)",
        )
        self.add_argument(
            "opts",
            default=[],
            nargs=argparse.REMAINDER,
            metavar="KEY VALUE",
            help="config overrides as KEY VALUE pairs, e.g. SOLVER.BASE_LR 0.001",
        )

    def parse_known_args(  # type: ignore[override]
        self, args: Optional[Sequence[str]] = None, namespace=None
    ) -> Tuple[argparse.Namespace, list]:
        parsed, unknown = super().parse_known_args(args, namespace)
        opts = list(getattr(parsed, "opts", None) or [])
        opts += list(getattr(parsed, _OPTS_AFTER_FLAG, None) or [])
        if hasattr(parsed, _OPTS_AFTER_FLAG):
            delattr(parsed, _OPTS_AFTER_FLAG)
        kept = []
        for token in opts:
            if token == _OPTS_FLAG:  # "KEY VALUE --opts KEY VALUE": one list
                continue
            if token in self._trailing_flags:
                setattr(parsed, self._trailing_flags[token], True)
                continue
            kept.append(token)
        parsed.opts = kept
        return parsed, unknown
