"""Stopping rules: the spec's `early_stop` section, the stateless flag stopper, and ASHA.

The collapse window lives in the trial (jobs/collapse.py) and in its checkpoint; the
stopper here only reads the `collapsed` / `diverged` flags a trial reports, so it carries no
state that a resumed sweep could lose.

How each end looks to the searcher: a collapsed or diverged trial's last report carries the
worst possible objective (-inf when maximising, +inf when minimising; never NaN), which Optuna
stores as a COMPLETE trial with that value, so TPE ranks its region last and learns to avoid
it; the metric columns keep the honest numbers. ASHA (optional) stops merely poor runs on the
objective and never sees those penalties (FiniteASHA). Every configuration's result.json keeps
`stop_reason` (completed, collapsed, diverged, asha, failed) and `stop_step`. With
`early_stop: {penalty: false}` the searcher is told such a run's measured metric instead.
"""
from __future__ import annotations

import math
from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.stopper import Stopper

from gansweep.jobs.collapse import CollapseRule
from gansweep.trainers.errors import ConfigError
from gansweep.trainers.registry import get_trainer

# The signal and its default threshold are the trainer's (COLLAPSE_SIGNAL, _THRESHOLD).
PATIENCE, GRACE_FRACTION = 3, 0.25


def validate_early_stop(raw: Any, trainer: str) -> dict:
    """Normalise `early_stop: {collapse: {...} | false, asha: {...} | absent, penalty}`.

    The result parses back to itself (it is what the frozen spec stores); `penalty` appears
    only when false, so specs frozen before it existed keep their fingerprints."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict) or set(raw) - {"collapse", "asha", "penalty"}:
        raise ConfigError("early_stop: write {collapse: {threshold: 0.3, patience: 3, "
                          "grace_steps: 500}, asha: {grace_steps: 200, reduction_factor: 3}, "
                          "penalty: true}; divergence (NaN/inf) always stops a trial")
    penalty = raw.get("penalty", True)
    if not isinstance(penalty, bool):
        raise ConfigError(f"early_stop.penalty: {penalty!r}; write true (collapsed and "
                          "diverged runs are told the worst value) or false (their metric)")
    cls = get_trainer(trainer)
    collapse = raw.get("collapse", {})
    if collapse is False:
        out_collapse: dict | bool = False
    elif isinstance(collapse, dict):
        extra = sorted(set(collapse) - {"threshold", "patience", "grace_steps", "trend",
                                        "revive"})
        if extra:
            raise ConfigError(f"early_stop.collapse: unknown key {', '.join(extra)}; use "
                              "threshold, patience, grace_steps, trend, revive (or collapse: "
                              "false)")
        t = collapse.get("threshold", cls.COLLAPSE_THRESHOLD)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
            raise ConfigError(f"early_stop.collapse.threshold: {t!r}; write a number in [0, 1]")
        out_collapse = {"threshold": float(t)}
        for key, low, default in (("patience", 1, PATIENCE), ("grace_steps", 0, None)):
            v = collapse.get(key, default)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
                raise ConfigError(f"early_stop.collapse.{key}: {v!r}; write a whole number "
                                  f">= {low}")
            out_collapse[key] = v
        trend = collapse.get("trend", False)
        if not isinstance(trend, bool):
            raise ConfigError(f"early_stop.collapse.trend: {trend!r}; write true (a run still "
                              "gaining modes is not stopped yet) or false")
        if trend:  # only when set, so specs frozen before it keep their fingerprints
            out_collapse["trend"] = True
        revive = collapse.get("revive", False)
        if not isinstance(revive, bool):
            raise ConfigError(f"early_stop.collapse.revive: {revive!r}; write true (collapsed "
                              "runs pause, and the best paused ones train on to their end with "
                              "the step budget no fresh run fits in) or false")
        if revive:
            out_collapse["revive"] = True
    else:
        raise ConfigError("early_stop.collapse: write a mapping or false")
    out = {"collapse": out_collapse, "asha": None}
    asha = raw.get("asha")
    if asha is not None:
        if not isinstance(asha, dict) or set(asha) - {"grace_steps", "reduction_factor"}:
            raise ConfigError("early_stop.asha: write {grace_steps: 200, reduction_factor: 3}")
        g, rf = asha.get("grace_steps", 1), asha.get("reduction_factor", 3)
        if isinstance(g, bool) or not isinstance(g, int) or g < 1:
            raise ConfigError(f"early_stop.asha.grace_steps: {g!r}; write a whole number >= 1")
        if isinstance(rf, bool) or not isinstance(rf, (int, float)) or rf <= 1:
            raise ConfigError(f"early_stop.asha.reduction_factor: {rf!r}; write a number > 1")
        out["asha"] = {"grace_steps": g, "reduction_factor": rf}
    if not penalty:
        out["penalty"] = False
    return out


def collapse_rule(early_stop: dict, trainer: str, steps: int) -> CollapseRule:
    """The in-trial detector's settings: the trainer's signal, grace resolved against steps."""
    signal = get_trainer(trainer).COLLAPSE_SIGNAL
    c = early_stop["collapse"]
    if c is False:
        return CollapseRule(signal=signal, enabled=False)
    grace = c["grace_steps"]
    if grace is None:
        grace = int(GRACE_FRACTION * steps)
    return CollapseRule(signal=signal, threshold=c["threshold"], patience=c["patience"],
                        grace_steps=grace, trend=c.get("trend", False))


class FlagStopper(Stopper):
    """Stops a trial that reported `collapsed` or `diverged`; holds no state."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return bool(result.get("collapsed") or result.get("diverged"))

    def stop_all(self) -> bool:
        return False


class FiniteASHA(ASHAScheduler):
    """ASHA on the objective that leaves collapsed and diverged trials to the FlagStopper.

    Those trials report a deliberate +-inf objective (a penalty for the searcher). ASHA's rung
    cutoff is a linearly interpolated percentile, and one -inf in a rung makes it -inf or NaN
    (-inf + inf); `reward < NaN` is never true, so that rung would stop no merely poor trial
    for the rest of the sweep. A penalised result is therefore not shown to ASHA at all: ASHA
    ranks the runs that are still learning, the collapse stopper ends the others.
    """

    def _shown(self, result: dict) -> dict:
        value = result.get(self._metric)
        if isinstance(value, (int, float)) and not math.isfinite(value):
            return {k: v for k, v in result.items() if k != self._metric}
        return result

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return super().on_trial_result(tune_controller, trial, self._shown(result))

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, self._shown(result))


def make_scheduler(early_stop: dict, max_steps: int):
    """ASHA on the objective, in training steps, when the spec asks for it; else FIFO."""
    asha = early_stop.get("asha")
    if not asha:
        return FIFOScheduler()
    return FiniteASHA(time_attr="step", max_t=max_steps, grace_period=asha["grace_steps"],
                      reduction_factor=asha["reduction_factor"])
