"""The spec's `early_stop` section: checked and normalised for the frozen spec, and turned into
the in-trial collapse detector's settings. Ray Tune's side of stopping (the flag stopper, ASHA)
is jobs/stopping.py; this module imports no Ray, so checking a spec costs no Ray Tune import.
"""
from __future__ import annotations

from typing import Any

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
