"""Optuna define-by-run search spaces, one function per trainer family (`families.py`).

A spec's `space` overrides or extends a family's defaults and `fixed` holds values constant;
both are applied by `Suggester`, so the family functions read like plain Optuna code.
The space handed to Ray Tune is `functools.partial(define_by_run, ...)` of importable
functions: Tune pickles the searcher with the experiment.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from gansweep.trainers.errors import ConfigError
from gansweep.trainers.registry import get_trainer


class Suggester:
    """Wraps an Optuna trial; answers `fixed` values and applies `space` overrides."""

    def __init__(self, trial, overrides: dict[str, dict], fixed: dict[str, Any],
                 kinds: dict[str, type]):
        self.trial, self.overrides, self.fixed, self.kinds = trial, overrides, fixed, kinds
        self.params: dict[str, Any] = {}

    def _take(self, name: str, default: dict) -> Any:
        if name in self.fixed:
            value = self.fixed[name]
        else:
            dist = self.overrides.get(name, default)
            if "choices" in dist:
                value = self.trial.suggest_categorical(name, list(dist["choices"]))
            elif dist.get("kind", self.kinds[name]) is int:
                value = self.trial.suggest_int(name, dist["low"], dist["high"],
                                               log=dist.get("log", False))
            else:
                value = self.trial.suggest_float(name, float(dist["low"]), float(dist["high"]),
                                                 log=dist.get("log", False))
        self.params[name] = value
        return value

    def float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return self._take(name, {"low": float(low), "high": float(high), "log": log,
                                 "kind": float})

    def int(self, name: str, low: int, high: int, log: bool = False) -> int:
        return self._take(name, {"low": int(low), "high": int(high), "log": log, "kind": int})

    def choice(self, name: str, choices: list) -> Any:
        return self._take(name, {"choices": list(choices)})

    def declared(self, h) -> Any:
        """A hyperparameter over the range its trainer declares (`HParam.search`)."""
        r = h.search
        if "choices" in r:
            return self.choice(h.name, r["choices"])
        kind = self.int if h.kind is int else self.float
        return kind(h.name, r["low"], r["high"], log=r.get("log", False))

    def finish(self) -> dict[str, Any]:
        """Suggest the spec's extensions the family does not search, then add fixed values."""
        for name in sorted(set(self.overrides) - set(self.params)):
            self._take(name, self.overrides[name])
        for name, value in self.fixed.items():
            self.params.setdefault(name, value)
        return self.params


def define_by_run(trainer: str, overrides: dict, fixed: dict, steps: int, trial) -> dict:
    from gansweep.search_spaces import families

    schema = get_trainer(trainer).HPARAMS
    s = Suggester(trial, overrides, fixed, {n: h.kind for n, h in schema.items()})
    # A family without a default space (a group's own trainer) searches the ranges its
    # HPARAMS declare, and what its spec's `space` names.
    family: Callable | None = getattr(families, trainer.replace("-", "_"), None)
    if family is not None:
        family(s, steps)
    else:
        for h in schema.values():
            if h.search is not None:
                s.declared(h)
    return s.finish()


def make_space(trainer: str, overrides: dict, fixed: dict, steps: int):
    """The picklable define-by-run callable for `OptunaSearch(space=...)`."""
    return functools.partial(define_by_run, trainer, overrides, fixed, steps)


def validate_space(trainer: str, space: Any, fixed: dict) -> dict[str, dict]:
    """Check a spec's `space` against the trainer's hyperparameters; return it normalised."""
    if not isinstance(space, dict):
        raise ConfigError("space: write a mapping such as {lr_g: {low: 1.0e-5, high: 1.0e-3, "
                          "log: true}}")
    schema = get_trainer(trainer).HPARAMS
    out: dict[str, dict] = {}
    for name, entry in space.items():
        where = f"space.{name}"
        if name not in schema:
            raise ConfigError(f"{where}: trainer {trainer} does not take {name}; it takes "
                              f"{', '.join(sorted(schema))}")
        if name in fixed:
            raise ConfigError(f"{where}: {name} is also in fixed; search it or fix it, not both")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: write {{low: .., high: .., log: false}} or "
                              "{choices: [..]}")
        h = schema[name]
        extra = sorted(set(entry) - {"low", "high", "log", "choices"})
        if extra:
            raise ConfigError(f"{where}: unknown key {', '.join(extra)}; use low, high, log "
                              "or choices")
        if "choices" in entry:
            if set(entry) != {"choices"}:
                raise ConfigError(f"{where}: give either choices or low/high, not both")
            choices = entry["choices"]
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}.choices: give a non-empty list of values")
            out[name] = {"choices": [_check(h, v, where) for v in choices]}
            continue
        if h.kind in (str, bool):
            raise ConfigError(f"{where}: {name} takes {h.allowed()}; search it with choices")
        if "low" not in entry or "high" not in entry:
            raise ConfigError(f"{where}: give both low and high (or choices)")
        low, high = _check(h, entry["low"], where + ".low"), _check(h, entry["high"],
                                                                    where + ".high")
        log = entry.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{where}.log: write true or false")
        if low > high:
            raise ConfigError(f"{where}: low ({low}) is greater than high ({high})")
        if log and low <= 0:
            raise ConfigError(f"{where}: log scale needs low > 0 (got {low}); raise low or "
                              "set log: false")
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ConfigError(f"{where}: low and high must be finite")
        out[name] = {"low": low, "high": high, "log": log}
    return out


def _check(h, value, where: str):
    try:
        return h.check(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
