"""The Ray Tune callback that logs each run to the spec's trackers as the driver sees it.

Ray Tune's own MLflowLoggerCallback and WandbLoggerCallback make one tracker run per Tune
trial id; a resumed sweep trains the same run under a new Tune trial (and a stored result is
handed back by yet another), so they would log runs twice and split one run in two. This
callback only says *which* run moved; what is logged comes from the trial store
(jobs/tracking/sync.py).
"""
from __future__ import annotations

from ray.tune import Callback


class Track(Callback):
    def __init__(self, sync, control):
        self.sync, self.control = sync, control

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("key") and not result.get("reused"):
            self.sync.key(result["key"])

    def _ended(self, trial) -> None:
        result = trial.last_result or {}
        if result.get("reused"):
            return  # a stored result handed back: nothing new in the store
        key = self.control.key_of(trial)
        if key is not None:
            self.sync.key(key)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial)  # ASHA's stop is recorded by RecordOutcomes, listed before this

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial)
