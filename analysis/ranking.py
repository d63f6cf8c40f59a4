"""What "better" and "best" mean, in one place.

A metric's direction (analysis/vocabulary.py DIRECTIONS: "min" or "max") says which way wins.
Everything that compares values asks this module: the searcher racing configurations over
seeds (jobs/racing.py) and telling Optuna their seed-robust value, and every reader (status,
report, rerun, `train --from`, the progress line), so what the searcher promotes and what a
reader calls best cannot drift apart.

A configuration is judged on the seeds it has ended: a run in flight, or one an hour budget
interrupted, does not count yet (an interrupted second seed must not hide the first seed a
finished sweep would otherwise lose). Its value is `seeds.statistic` (the mean, or the worst
seed) of the metric as measured over those seeds, and it has none while one of them has no
finite value: a seed left out could be its worst. Configurations judged on every seed rank
first, then those judged on fewer; those with a stopped run (collapsed, diverged, ASHA, failed)
or without a value are never ranked, so a sweep never returns them.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from gansweep.analysis.layout import COMPLETED, UNFINISHED

# A configuration's standing, in the order configurations sort; the first two are ranked.
ALL_SEEDS, FEWER_SEEDS, NONE_ENDED, UNRANKED = range(4)
# A run's standing: completed with a value (ranked), in flight, stopped with a value, neither.
RUN_COMPLETED, RUN_UNFINISHED, RUN_STOPPED, RUN_VALUELESS = range(4)


def key(value, mode: str) -> float:
    """A sort key on which smaller is better in either direction; a value that is not a finite
    number sorts after every value that is."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.inf
    if not math.isfinite(v):
        return math.inf
    return v if mode == "min" else -v


def keys(values, mode: str) -> np.ndarray:
    """`key` of each value of an array or column."""
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v), v if mode == "min" else -v, np.inf)


def better(a, b, mode: str) -> bool:
    """True when value `a` beats `b` (a finite value beats one that is not)."""
    return key(a, mode) < key(b, mode)


def best(values: Iterable, mode: str) -> float:
    """The best finite value (NaN when there is none)."""
    finite = [v for v in values if math.isfinite(v)]
    return min(finite, key=lambda v: key(v, mode)) if finite else math.nan


def statistic(values: list[float], name: str, mode: str) -> float:
    """`seeds.statistic` of values over seeds: their mean, or the worst of them (NaN for none).
    Penalties (+-inf, jobs/trial.py) count as they are: the study is told them."""
    if not values:
        return math.nan
    if name == "worst":
        return float(min(values) if mode == "max" else max(values))
    return float(sum(values) / len(values))


def configuration_value(values: list[float], name: str, mode: str) -> float:
    """A configuration's value over the seeds it ended (each seed's metric as measured, NaN for
    none): `statistic` of them, NaN while any seed lacks a finite value."""
    if not all(math.isfinite(v) for v in values):
        return math.nan
    return statistic(values, name, mode)


def standing(states: Iterable[str], ended: int, value: float, count: int) -> int:
    """Where a configuration sorts, from how its runs stand (`states`, UNFINISHED for those in
    flight), how many of its seeds ended, its `configuration_value` and `seeds.count`."""
    states = set(states)
    if states - {COMPLETED, UNFINISHED}:
        return UNRANKED
    if math.isfinite(value):
        return ALL_SEEDS if ended >= count else FEWER_SEEDS
    return NONE_ENDED if UNFINISHED in states else UNRANKED


def is_ranked(where: int) -> bool:
    return where in (ALL_SEEDS, FEWER_SEEDS)


def order(where: int, value: float, mode: str, cid: str) -> tuple:
    """The sort key of a configuration: its standing, then its value, then its key."""
    return where, key(value, mode), cid


def run_standing(state: str, value: float) -> int:
    """Where one run sorts among runs: only a completed run with a value is ranked; runs in
    flight follow by their value so far, then stopped runs by theirs."""
    finite = math.isfinite(value)
    if state == COMPLETED and finite:
        return RUN_COMPLETED
    if state == UNFINISHED:
        return RUN_UNFINISHED
    return RUN_STOPPED if finite else RUN_VALUELESS
