"""A research group's own code, named in a spec as `package.module:attribute` (a trainer class,
a dataset loader, a feature network) or registered by an installed package under an entry-point
group (`gansweep.trainers`, `gansweep.datasets`, `gansweep.features`).

The reference is what a spec and a trial key record, so a sweep resumes with the same code
whichever way it was found. A module the process cannot import is refused with the module
named and what to do, never a bare ImportError.
"""
from __future__ import annotations

import importlib
import socket
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from gansweep.trainers.errors import ConfigError

HOW = ("install its package on every machine that runs trials (pip install ...), or list the "
       "folder that holds it under the spec's py_modules")


def is_reference(value: Any) -> bool:
    """`module:attribute` (not a URI, not a path)."""
    if not isinstance(value, str) or "://" in value or "/" in value:
        return False
    module, sep, attr = value.partition(":")
    return bool(sep and module and attr) and all(
        p.isidentifier() for p in (*module.split("."), *attr.split(".")))


def registered(group: str) -> dict[str, Any]:
    """Names installed packages register under `group` (entry points), unloaded."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load(value: str, key: str, group: str | None = None) -> Any:
    """The object a `module:attribute` reference or a registered name points at."""
    if not is_reference(value):
        ep = registered(group).get(value) if group else None
        if ep is None:
            raise ConfigError(f"{key}: {value!r} is neither a built-in name, a name an installed "
                              f"package registers ({group}), nor module:attribute")
        value = ep.value
    module, _, attr = value.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{key}: module {module} cannot be imported on {socket.gethostname()} "
                          f"({exc}); {HOW}") from None
    except Exception as exc:  # the user's module raised while importing: say where
        raise ConfigError(f"{key}: importing module {module} failed on "
                          f"{socket.gethostname()}: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{key}: module {module} has no {attr}; check the name after the "
                              "colon")
        obj = getattr(obj, part)
    return obj


def use_modules(folders) -> None:
    """Make the packages in `folders` (a spec's py_modules) importable in this process, as Ray
    makes them on every worker."""
    for folder in folders:
        parent = str(Path(folder).parent)
        if parent not in sys.path:
            sys.path.insert(0, parent)
