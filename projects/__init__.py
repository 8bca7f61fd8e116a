"""FastReID-style projects built on the fastreid core; each folder registers into the core registries.

In a clone this package is ``projects``; an installed fastreid carries it as
``fastreid_projects`` (a name the toolbox owns, so a user's own ``projects`` package is not
shadowed). The project code imports its own modules relatively, so it runs under either name.
"""

import os as _os
import sys as _sys

_NAMES = ("projects", "fastreid_projects")


def _refuse_second_name() -> None:
    """Importing the same folder under both names would register every project component
    twice (two copies of each class); refuse with the fix instead."""
    here = _os.path.realpath(__file__)
    for other in _NAMES:
        module = _sys.modules.get(other)
        if other == __name__ or module is None or not getattr(module, "__file__", None):
            continue
        if _os.path.realpath(module.__file__) == here:
            raise ImportError(
                f"fastreid's projects are already imported as '{other}'; importing them again "
                f"as '{__name__}' would register every component twice. Use one name: "
                f"'{other}' (e.g. `from {other}.FastAttr.fastattr import AttrTrainer`)."
            )


_refuse_second_name()
