"""gansweep's Ray Tune searcher: Optuna chooses configurations; seeds race; the budget decides
what may start. A thin adapter from Tune's callbacks to three parts, each with one job (as Ray
Tune's Repeater and ConcurrencyLimiter wrap a searcher: behaviour by composition):

- jobs/racing.py: which run goes next and which races are over (plain Python);
- jobs/budget.py: what a run may spend and what the runs have spent;
- jobs/feedback.py: what the Optuna study is asked and told.

One study trial is one configuration; one Tune trial is one run of it under one seed. A run is
started only when its planned steps fit in what is left of a step budget, so a step budget is
never exceeded. A run an hour budget stops is no outcome: it resumes first next time.

Revival (`early_stop.collapse.revive`): once no new configuration can start (the step budget
left is less than a run, or `trials` is reached), paused collapsed runs train on to their end,
with collapse detection off, while they fit; they spend only steps no fresh run could use.

Everything is rebuilt from the trial store and the study when a driver starts (`restore`), so a
resumed sweep continues each race where it was; nothing here is saved by Ray Tune.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ray.tune.search import Searcher

from gansweep.analysis import layout
from gansweep.analysis.records import Revival, RunRecord, RunResult
from gansweep.analysis.sweeps import last_step
from gansweep.jobs.budget import Budget
from gansweep.jobs.feedback import CID_ATTR, REVIVED_ATTR, StudyFeedback
from gansweep.jobs.racing import Race, Racing, Run
from gansweep.jobs.trial import REVIVE, SEED, TrialControl

__all__ = ["CID_ATTR", "REVIVED_ATTR", "SweepSearch"]


class SweepSearch(Searcher):
    def __init__(self, control: TrialControl, study, space, seeds: dict, trials: int | None,
                 budget: Budget, log=print, revive: bool = False,
                 per_experiment: int | None = None):
        super().__init__(metric="objective", mode=control.mode)
        self.control, self.study, self.trials, self.budget = control, study, trials, budget
        self.seeds = [control.seed + i for i in range(seeds["count"])]
        modes = None if control.metric_2 is None else (control.mode, control.mode_2)
        self.racing = Racing(seeds["count"], seeds["top"], seeds["statistic"], control.mode,
                             control.steps, revive=revive and budget.steps is not None,
                             modes=modes)
        self.feedback = StudyFeedback(study, space, control.config_key, seeds["statistic"],
                                      control.mode, log, modes=modes)
        self.runs: dict[str, Run] = {}  # Tune trial id -> (configuration key, seed index)
        self.placed: dict[str, float] = {}  # Tune trial id -> when it was placed
        self.revivals: set[str] = set()  # Tune trial ids that revive a run
        self.finished = False
        self.log = log
        self.reserve_said = self.late_said = False  # the finish_leaders lines: once per driver run
        self.revived_keys: list[str] = []  # trial store entries a revival rewrote (restore)
        # Trials placed in this Ray Tune experiment; at `per_experiment` it ends (once its
        # running trials have) and the driver continues in a fresh one (jobs/submit.py).
        self.per_experiment, self.placed_here, self.rolled_over = per_experiment, 0, False

    # ---- Tune's side ------------------------------------------------------------------------
    def suggest(self, trial_id: str):
        if self.finished or self.rolled_over:
            return Searcher.FINISHED
        if self.per_experiment is not None and self.placed_here >= self.per_experiment:
            if self.runs:
                return None  # the experiment ends once its running trials have
            self.rolled_over = True
            return Searcher.FINISHED
        self._decide()
        reserving = self._reserving()  # after the decisions: a promotion can make a leader
        run = self.racing.next_queued()
        if (run is None and self._can_grow(reserving) and self.budget.fits(self.control.steps)
                and self._in_time(self.control.steps, None)):
            run = self._new_configuration()  # asked only once it can start at once
        revival = run is None and not reserving and not self._can_grow(reserving)
        if revival:
            run = self.racing.next_revival(self.budget.fits)
        if run is None or not self._may_start(run):
            if not self.runs:  # nothing running: nothing will change
                self._end()
                return Searcher.FINISHED
            return None
        race, j = run
        start = self.racing.start(race, j, revival)
        self.runs[trial_id] = (race.cid, j)
        self.placed[trial_id] = time.time()
        self.placed_here += 1
        self.budget.place(trial_id, start, self.control.steps)
        if revival:
            self.revivals.add(trial_id)
            return {**race.params, SEED: self.seeds[j], REVIVE: True}
        return {**race.params, SEED: self.seeds[j]}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        run = self.runs.get(trial_id)
        if run is None or result.get("reused"):
            return
        self.budget.reported(trial_id, int(result.get("step", 0)))
        self.feedback.intermediate(self.racing.races[run[0]], run[1], result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        run = self.runs.pop(trial_id, None)
        revival = trial_id in self.revivals
        self.revivals.discard(trial_id)
        placed = self.placed.pop(trial_id, None)
        fresh = bool(result) and not result.get("reused")  # the last report comes only here
        ran_s = time.time() - placed if placed is not None and fresh else None
        if ran_s is not None:
            self.feedback.observe(run_s=ran_s)
        end = self.budget.release(trial_id, int(result.get("step", 0) or 0) if fresh else None,
                                  ran_s, run[0] if run else "")
        if run is None:
            return
        race, j = self.racing.races[run[0]], run[1]
        if self.budget.expired:  # stopped by the hour budget: resumable, not an outcome
            self.racing.interrupted(race, j, end or 0, revival)
            return
        result = result or {}
        reason = _ended_as(result, error)
        value, objective = result.get(self.control.metric), result.get("objective")
        second = _second(self.control, result)
        if revival:
            self.racing.revival_ended(race, j, reason, value, objective, *second)
            self.feedback.tell_revival(race, j, reason, objective, second[1])
        else:
            if not result.get("reused"):  # Tune passes a result ASHA stopped on only here
                self.feedback.intermediate(race, j, result)
            self.racing.ended(race, j, reason, value, objective, end or 0, *second)
        self._decide()

    def idle(self) -> bool:
        """Nothing to run: every race decided and no new configuration allowed."""
        self._decide()
        return (not self.racing.waiting and not self._can_grow()
                and self.racing.next_revival(self.budget.fits) is None)

    def summary(self) -> str:
        r = self.racing
        cap = "" if self.trials is None else f" of {self.trials}"
        text = f"{len(r.races)}{cap} configurations, {r.ended_runs} runs ended"
        text += self.budget.spent_text()
        if r.revived:
            text += f", {r.revived} collapsed run(s) revived"
        return text

    def _can_grow(self, reserving: bool | None = None) -> bool:
        """A new configuration may still be asked for (`reserving`: `_reserving()`, if known)."""
        return (not self.finished
                and (self.trials is None or len(self.racing.races) < self.trials)
                and not self.budget.exhausted(self.control.steps)
                and not (self._reserving() if reserving is None else reserving))

    def _may_start(self, run: tuple[Race, int]) -> bool:
        """The run's remaining steps fit the budget and the hours (`_in_time`)."""
        steps = self.racing.remaining(*run)
        return self.budget.fits(steps) and self._in_time(steps, run[0].cid)

    def _in_time(self, steps: int, cid: str | None) -> bool:
        """With `finish_leaders` under an hour budget, a run of `steps` (of configuration
        `cid`; None: a new one) starts only if it would end before the hours do."""
        if self.budget.finishes(steps, cid):
            return True
        if not self.late_said:
            self.late_said = True
            self.log(f"[gansweep] budget: a run of {steps} steps would need about "
                     f"{steps / self.budget.speed(cid):.0f} s and {self.budget.left_s():.0f} s "
                     "are left: no run starts that the hour budget would cut (finish_leaders)")
        return False

    def _reserving(self) -> bool:
        """`budget.finish_leaders`: what is left is kept for the leaders' remaining seeds."""
        if not self.budget.finish_leaders:
            return False
        chains = self.racing.leader_chains()
        if self.budget.room_for_new(self.control.steps, chains):
            return False
        if not self.reserve_said:
            self.reserve_said = True
            self.log(f"[gansweep] budget: no new configuration while what is left is kept "
                     f"for {len(chains)} leading configuration(s)' "
                     f"{sum(map(len, chains.values()))} remaining run(s) (finish_leaders)")
        return True

    def _decide(self) -> None:
        reserving = self._reserving()
        for race in self.racing.decide(self._can_grow(reserving), self.budget.exhausted,
                                       reserving=reserving):
            self.feedback.tell(race)

    def _new_configuration(self) -> tuple[Race, int] | None:
        asked = self.feedback.ask(self.racing.races)
        if asked is None:
            return None
        number, params, cid = asked
        return self.racing.add(cid, params, number), 0

    def _end(self) -> None:
        self.finished = True
        for race in self.racing.end():
            self.feedback.tell(race)

    # ---- a driver (re)starting ----------------------------------------------------------------
    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Tune's own searcher snapshot is not used: the study and the trial store are this
        searcher's state, written as results arrive, and `restore` rebuilds it from them."""

    def restore(self, store: layout.TrialStore) -> int:
        """Rebuild the races from the trial store and the study; returns how many runs will
        resume from a checkpoint."""
        told, open_, told_revivals = self.feedback.past()
        racing, metric = self.racing, self.control.metric
        resumed = 0
        revivals_ended = []
        for e in _stored_runs(store, self.control.seed):
            config = e.record.config
            cid = self.control.config_key(config, resolved=True)
            race = racing.races.get(cid)
            if race is None:
                race = racing.known(cid, config, open_.get(cid, told.get(cid)),
                                    told=cid not in open_)
            if e.record.seed not in self.seeds:
                continue
            j = self.seeds.index(e.record.seed)
            self.budget.charge(e.step)
            if e.result is not None:
                r = e.result
                racing.stored_result(race, j, r.stop_reason, _num(r.final.get(metric)),
                                     r.objective, e.step, r.revived is not None,
                                     *_second(self.control, r.final))
                if r.revived is not None:
                    self.revived_keys.append(e.key)
                    if (cid, j) not in told_revivals:
                        revivals_ended.append((race, j, r))
                continue
            resumed += 1
            if e.revival is not None:  # a revival a kill interrupted: it goes on first
                self.revived_keys.append(e.key)
                racing.stored_revival(race, j, e.step, _num(e.revival.final.get(metric)),
                                      e.revival.objective,
                                      *_second(self.control, e.revival.final))
            elif not racing.stored_checkpoint(race, j, e.step):
                # an older driver's interrupted configuration: Optuna suggests it again
                self.feedback.suggest_again(config)
                racing.forget(cid)
        for cid, number in open_.items():
            if cid not in racing.races:  # asked, then the driver died before its first write
                self.feedback.fail(number)
        racing.settle()
        for race, j, r in revivals_ended:  # the driver died before telling the study
            self.feedback.tell_revival(race, j, r.stop_reason, r.objective,
                                       _second(self.control, r.final)[1])
        return resumed


def _ended_as(result: dict, error: bool) -> str:
    """How a run ended, from its last result."""
    reason = layout.FAILED if error else result.get("stop_reason") or layout.FAILED
    if reason == layout.RUNNING:  # stopped from outside before its last step: ASHA
        reason = layout.ASHA
    return reason


def _second(control: TrialControl, result: dict) -> tuple:
    """A run's second objective as measured and as the searcher sees it (None, None for one
    objective)."""
    if control.metric_2 is None:
        return None, None
    return _num(result.get(control.metric_2)), _num(result.get("objective_2"))


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class _StoredRun:
    """A run in the trial store as a driver finds it: what it trains, the steps it trained,
    how it ended (None: it resumes) and, for a revival a kill interrupted, where it paused."""

    key: str
    record: RunRecord
    step: int
    result: RunResult | None
    revival: Revival | None


def _stored_runs(store: layout.TrialStore, seed: int) -> list[_StoredRun]:
    """Every run in the store (`seed`: the sweep's, which a record without one trained)."""
    out = []
    for key in store.keys():
        record = store.record(key)
        if record is None:
            continue
        result = store.result(key)
        if result is not None:
            step = result.stop_step
        else:
            step = last_step(store.read(key, layout.METRICS))
        out.append(_StoredRun(key, record.filled_from({"seed": seed}), step, result,
                              store.revival(key) if result is None else None))
    return out
