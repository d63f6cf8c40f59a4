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
from gansweep.trainers.errors import ConfigError

# What a result keeps of Tune's last result: the report's own columns, not Tune's bookkeeping.
KEPT = {"step", "objective", "objective_2", "time_s", *LOSSES, *DIRECTIONS}


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
            store.write_record(key, self.control.record(trial.config or {}, trial.trial_id))
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


class SweepFailed(Exception):
    """Every run a driver run started failed: nothing was learned, and the caller must not be
    told the sweep is done (the CLI exits 1 with the first failure's message)."""


def own_message(error: BaseException) -> str:
    """What the failing code itself said, on one line: Ray wraps a trial's exception in a
    RayTaskError (or a TuneError) whose text is a whole stack; its `cause` is the original."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        cause = getattr(error, "cause", None) or error.__cause__
        if not isinstance(cause, BaseException):
            break
        error = cause
    text = str(error).strip()
    if isinstance(error, ConfigError) and text:
        line = text.splitlines()[0]
    else:  # a bare "KeyError: 'x'" says little without its type
        lines = [f"{type(error).__name__}: {text}"] if text else [type(error).__name__]
        line = lines[0].splitlines()[0]
    return line


def check_not_all_failed(grid, where: str) -> None:
    """Raise SweepFailed when every trial of the driver run's ResultGrid failed; `where`: the
    Tune experiment folder, whose trial_*/error.txt hold the full stacks."""
    errors = grid.errors
    if len(grid) == 0 or len(errors) < len(grid):
        return
    raise SweepFailed(f"all {len(grid)} run(s) failed; the first: {own_message(errors[0])} "
                      f"(each run's full error: {where}/trial_*/error.txt)")
