"""Read-only mappings for the frozen records a sweep passes around (its spec, a trial's
control settings): a frozen dataclass cannot have a field reassigned, and these keep what the
fields hold from being changed in place."""
from __future__ import annotations

from typing import Any


class FrozenDict(dict):
    """A dict that refuses changes. A dict subclass, so json, ==, ** and copies work as on a
    plain dict; it pickles as a plain dict's items (Ray ships it to every trial)."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("this mapping is frozen: build a new one instead of changing it")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __reduce__(self):
        return (type(self), (dict(self),))


def freeze(value: Any) -> Any:
    """Dicts and lists, nested, as FrozenDicts and tuples; anything else as it is."""
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The plain dicts and lists of a frozen value (for YAML, which writes only plain types)."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value
