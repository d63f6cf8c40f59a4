"""The trainer contract, checked: a class named in a spec (`trainer: my_lab.models:HingeGAN`)
is refused before any trial starts, with everything it lacks named at once.

What a trainer declares and offers is `gansweep.Trainer`'s (trainers/base.py); this module only
checks a class against it. The collapse signal's name is checked against the metric
vocabulary by the spec (jobs/spec.py), which owns that vocabulary's use.
"""
from __future__ import annotations

import math
from typing import Any

from gansweep.trainers.errors import ConfigError
from gansweep.trainers.hparams import HParam

DATA_KINDS = ("vector", "image")
OUTPUTS = ("samples", "weights")


def problems(cls: Any) -> list[str]:
    """What `cls` lacks of the contract (empty: it follows it)."""
    from gansweep.trainers.base import Trainer

    if not (isinstance(cls, type) and issubclass(cls, Trainer)):
        return [f"to derive from gansweep.Trainer ({cls!r} does not)"]
    out = []
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        out.append("a class attribute `name` (a non-empty string)")
    kinds = getattr(cls, "data_kinds", None)
    if not (isinstance(kinds, tuple) and kinds and set(kinds) <= set(DATA_KINDS)):
        out.append(f"`data_kinds`, a non-empty tuple of {' / '.join(DATA_KINDS)}")
    hp = getattr(cls, "HPARAMS", None)
    if not (isinstance(hp, dict) and all(isinstance(h, HParam) and h.name == n
                                         for n, h in hp.items())):
        out.append("`HPARAMS`, a dict of name -> gansweep.HParam (each under its own name)")
    else:
        out += [p for h in hp.values() if h.search is not None for p in _search(h)]
    if getattr(cls, "OUTPUT", None) not in OUTPUTS:
        out.append(f"`OUTPUT`, one of {', '.join(OUTPUTS)}")
    if not isinstance(getattr(cls, "COLLAPSE_SIGNAL", None), str):
        out.append("`COLLAPSE_SIGNAL`, the metric the collapse rule watches")
    threshold = getattr(cls, "COLLAPSE_THRESHOLD", None)
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
        out.append("`COLLAPSE_THRESHOLD`, a finite number")
    verbs = ["train", "state_dict", "load_state_dict",
             "output" if getattr(cls, "OUTPUT", None) == "weights" else "sample"]
    for verb in verbs:
        if getattr(cls, verb, None) is getattr(Trainer, verb):
            out.append(f"a method `{verb}` of its own")
    return out


def check(cls: Any, key: str = "trainer") -> Any:
    found = problems(cls)
    if found:
        name = getattr(cls, "__qualname__", repr(cls))
        raise ConfigError(f"{key}: {name} does not follow the trainer contract "
                          f"(gansweep.Trainer); it needs {'; '.join(found)}")
    return cls


def _search(h: HParam) -> list[str]:
    """A declared search range the hyperparameter's own checks accept."""
    r = h.search
    where = f"HPARAMS[{h.name!r}].search"
    try:
        if isinstance(r, dict) and set(r) == {"choices"} and r["choices"]:
            [h.check(v) for v in r["choices"]]
            return []
        if isinstance(r, dict) and {"low", "high"} <= set(r) <= {"low", "high", "log"}:
            low, high = h.check(r["low"]), h.check(r["high"])
            if low <= high and not (r.get("log") and low <= 0):
                return []
    except ConfigError as exc:
        return [f"{where} within its own range ({exc})"]
    return [f"{where} as {{low, high, log}} (low <= high, low > 0 for log) or {{choices: "
            "[...]}"]
