"""Stopping rules in Ray Tune: the stateless flag stopper, and ASHA. The spec's `early_stop`
section they act on is read in jobs/early_stop.py (without Ray, so a spec is checked and a
sweep's status read without importing Ray Tune).

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

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.stopper import Stopper


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
