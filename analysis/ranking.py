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


# ---- two objectives: the Pareto front --------------------------------------------------------
#
# A sweep with two objectives (`metric: [fid, gpu_seconds]`) has no single best: a
# configuration is on the front when no other is at least as good in both objectives and
# better in one. Configurations are ordered by non-dominated front (front 0 first); within a
# front by their distance to the front's ideal point once each objective is scaled to [0, 1]
# over that front (the knee first), then by the first objective, then by their key. Racing
# promotes by this order and every reader ranks by it, so `train --from` (the knee by
# default), `rerun --top K` and the report all agree with what the searcher raced.

def dominates(a, b, modes) -> bool:
    """True when point `a` is at least as good as `b` in every objective and better in one."""
    ka = [key(v, m) for v, m in zip(a, modes)]
    kb = [key(v, m) for v, m in zip(b, modes)]
    return all(x <= y for x, y in zip(ka, kb)) and any(x < y for x, y in zip(ka, kb))


def fronts(points, modes) -> list[int]:
    """The non-dominated rank of each point (0: on the Pareto front; 1: on it once front 0 is
    taken away; ...). A value that is not finite loses to every finite one."""
    points = [tuple(p) for p in points]
    n = len(points)
    dominated_by = [0] * n
    beats: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(points[i], points[j], modes):
                beats[i].append(j)
                dominated_by[j] += 1
            elif dominates(points[j], points[i], modes):
                beats[j].append(i)
                dominated_by[i] += 1
    out = [0] * n
    current = [i for i in range(n) if dominated_by[i] == 0]
    level = 0
    while current:
        following = []
        for i in current:
            out[i] = level
            for j in beats[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    following.append(j)
        current, level = following, level + 1
    return out


def knee_distances(points, modes) -> list[float]:
    """Each point's distance to the ideal point of `points` (one front), every objective
    scaled to [0, 1] over them (0: the best of them, 1: the worst; an objective all share
    counts 0)."""
    ks = np.array([[key(v, m) for v, m in zip(p, modes)] for p in points], dtype=float)
    if not len(ks):
        return []
    lo, hi = ks.min(axis=0), ks.max(axis=0)
    span = np.where(np.isfinite(hi - lo) & (hi > lo), hi - lo, 1.0)
    scaled = np.where(np.isfinite(ks), (ks - lo) / span, 1.0)
    scaled = np.where(hi > lo, scaled, 0.0)
    return [float(d) for d in np.sqrt((scaled ** 2).sum(axis=1))]


def pareto_order(points, modes, ids) -> list[int]:
    """Indices of `points` best first: by front, then the knee (distance to the front's ideal
    point, scaled), then the first objective, then `ids`."""
    front = fronts(points, modes)
    dist = [0.0] * len(points)
    for f in set(front):
        members = [i for i in range(len(points)) if front[i] == f]
        for i, d in zip(members, knee_distances([points[i] for i in members], modes)):
            dist[i] = d
    return sorted(range(len(points)),
                  key=lambda i: (front[i], dist[i], key(points[i][0], modes[0]), ids[i]))


def pick(points, modes, metrics, rule: str) -> int | None:
    """The front point a rule picks (an index into `points`; None without points): `knee`,
    the point closest to the ideal point with each objective scaled to [0, 1] over the front,
    or `best:METRIC`, the front point best in that objective (ties: the knee order)."""
    if not len(points):
        return None
    front = fronts(points, modes)
    members = [i for i in range(len(points)) if front[i] == 0]
    dist = dict(zip(members, knee_distances([points[i] for i in members], modes)))
    if rule == "knee":
        return min(members, key=lambda i: (dist[i], key(points[i][0], modes[0]), i))
    metric = rule.split(":", 1)[1]
    m = list(metrics).index(metric)
    return min(members, key=lambda i: (key(points[i][m], modes[m]), dist[i], i))


def pick_rules(metrics) -> list[str]:
    """The rules `pick` takes for a sweep with these objectives."""
    return ["knee", *(f"best:{m}" for m in metrics)]
