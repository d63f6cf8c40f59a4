"""Records, in the trial store, how trials ended when the trial itself could not say so:
stopped by ASHA mid-run, or failed beyond its retries.

A trial that ends on its own (completed, collapsed, diverged) writes its result.json before it
reports its last row, so by the time Tune calls back here the file exists and is left alone.
Only a trial whose last report still said `stop_reason: running` was stopped from outside,
and the only thing that stops a running trial from outside is the scheduler (ASHA)."""
from __future__ import annotations

from ray.tune import Callback

from gansweep.analysis import layout
from gansweep.analysis.vocabulary import DIRECTIONS, LOSSES
from gansweep.jobs.budget import Budget
from gansweep.jobs.trial import TrialControl

# What a result keeps of Tune's last result: the report's own columns, not Tune's bookkeeping.
KEPT = {"step", "objective", "time_s", *LOSSES, *DIRECTIONS}


class RecordOutcomes(Callback):
    def __init__(self, control: TrialControl, budget: Budget | None = None):
        self.control, self.budget = control, budget

    def _record(self, trial, reason: str) -> None:
        if self.budget is not None and self.budget.expired:
            return  # stopped because the hour budget ran out: it resumes, nothing ended
        store = layout.TrialStore(self.control.store)
        key = self.control.key(trial.config or {})
        if store.has_result(key):
            return
        if store.read(key, layout.CONFIG) is None:  # it failed before its first write
            store.write_json(key, layout.CONFIG, self.control.record(trial.config or {},
                                                                     trial.trial_id))
        last = {k: v for k, v in (trial.last_result or {}).items() if k in KEPT}
        store.write_result(key, reason, last.get("step", 0), last.get("objective"), last,
                           trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        # Anything else (no report at all, or a last report with another reason) is not an
        # ASHA stop: leave the configuration without a result rather than mislabel it.
        if (trial.last_result or {}).get("stop_reason") == layout.RUNNING:
            self._record(trial, layout.ASHA)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial, layout.FAILED)
