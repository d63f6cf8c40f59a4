"""Records, in the trial store, how trials ended when the trial itself could not say so:
stopped by ASHA mid-run, or failed beyond its retries.

A trial that ends on its own (completed, collapsed, diverged) writes its result.json before it
reports its last row, so by the time Tune calls back here the file exists and is left alone.
Only a trial whose last report still said `stop_reason: running` was stopped from outside,
and the only thing that stops a running trial from outside is the scheduler (ASHA)."""
from __future__ import annotations

import time

from ray.tune import Callback

from analysis.vocabulary import DIRECTIONS, LOSSES
from trainers.store import TrialStore
from trainers.tune_entry import SWEEP_KEY, key_for, split_config

# What a result keeps of Tune's last result: the report's own columns, not Tune's bookkeeping.
KEPT = {"step", "objective", "time_s", *LOSSES, *DIRECTIONS}


class RecordOutcomes(Callback):
    def _record(self, trial, reason: str) -> None:
        if SWEEP_KEY not in (trial.config or {}):
            return
        ctl, hp = split_config(trial.config)
        store = TrialStore(ctl["store"])
        key = key_for(ctl, hp)
        if store.exists(key, "result.json"):
            return
        last = {k: v for k, v in (trial.last_result or {}).items() if k in KEPT}
        store.write_json(key, "result.json", {
            "key": key, "stop_reason": reason, "stop_step": last.get("step", 0),
            "objective": last.get("objective"), "final": last, "trial_id": trial.trial_id,
            "time_s": last.get("time_s"), "finished": time.time()})

    def on_trial_complete(self, iteration, trials, trial, **info):
        # Anything else (no report at all, or a last report with another reason) is not an
        # ASHA stop: leave the configuration without a result rather than mislabel it.
        if (trial.last_result or {}).get("stop_reason") == "running":
            self._record(trial, "asha")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial, "failed")
