"""gansweep's searcher: Optuna chooses configurations; this decides what Ray Tune runs next and
what the study is told.

One Optuna trial is one configuration; one Tune trial is one run of it under one seed. Seeds
come in a fixed order (the sweep's seed, then +1, +2, ...), so configurations are compared on
the same seeds. Each configuration races (irace's racing, SMAC's intensification):

- its first run uses the sweep's seed;
- after its j-th run it goes on to seed j+1 while its statistic over seeds 0..j-1 ranks in the
  top `seeds.top` of every configuration that has run those seeds (at the first seed, among at
  least 2 x top of them: the first few configurations wait for enough peers rather than all
  being promoted); runs of promoted configurations go before new configurations;
- it stops racing when it loses, reaches `seeds.count` seeds, or a run ends abnormally
  (collapsed, diverged, stopped by ASHA, failed: not a configuration that trains well on
  every seed).

A configuration that lost once never races again (the bar only rises), so the study is told
once, when the race ends: the statistic over the seeds it ran of the objective each run
reported (a collapsed or diverged run's is the documented penalty), PRUNED with the first
seed's intermediate values when ASHA stopped a run, FAIL when a run failed. Optuna therefore
learns from the seed-robust value, never a first seed's luck.

Budgets (`budget: {steps, hours}`) are jobs/budget.py's: a run is started only when its
planned steps fit in what is left, so a step budget is never exceeded.

Revival (`early_stop.collapse.revive`): a collapsed run is a pause, its checkpoint kept. Once no
new configuration can start (the step budget left is less than a run, or `trials` is reached),
the paused run with the best metric at its pause whose remaining steps fit trains on to its end
with collapse detection off, then the next, while they fit. Revival spends only steps no fresh
run could use. Its race was told already; Optuna learns the revived value as a trial of its own
with the same parameters.

Everything is rebuilt from the trial store and the study when a driver starts, so a resumed
sweep continues each race where it was; nothing here is saved by Ray Tune.
"""
from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass, field

from ray.tune.search import Searcher

from gansweep.analysis import layout
from gansweep.jobs.budget import Budget
from gansweep.jobs.trial import REVIVE, SEED, TrialControl

CID_ATTR = "gansweep_config"  # Optuna user attribute: the configuration's key (no seed)
REVIVED_ATTR = "gansweep_revived"  # ... and the seed index of the run a revival trained on


@dataclass
class Race:
    """One configuration and its runs, seed index -> outcome."""

    cid: str
    params: dict
    number: int | None = None  # its Optuna trial, once it has one
    values: dict[int, float] = field(default_factory=dict)  # the metric as measured
    objectives: dict[int, float] = field(default_factory=dict)  # what each run reported
    reasons: dict[int, str] = field(default_factory=dict)  # how each run ended
    running: set[int] = field(default_factory=set)
    queued: set[int] = field(default_factory=set)
    told: bool = False
    ranked_to: int = 0  # seed prefixes already entered among the peers

    def done(self) -> int:
        """Consecutive seeds run to an end from the first."""
        j = 0
        while j in self.reasons:
            j += 1
        return j

    def abnormal(self) -> bool:
        return any(r != layout.COMPLETED for r in self.reasons.values())

    def busy(self) -> bool:
        return bool(self.running or self.queued)


def statistic(values: list[float], name: str, mode: str) -> float:
    """The seed-robust value: the mean, or the worst seed."""
    if not values:
        return math.nan
    if name == "worst":
        return min(values) if mode == "max" else max(values)
    return float(sum(values) / len(values))


class SweepSearch(Searcher):
    def __init__(self, control: TrialControl, study, space, seeds: dict, trials: int | None,
                 budget: Budget, log=print, revive: bool = False):
        super().__init__(metric="objective", mode=control.mode)
        self.control, self.study, self.space = control, study, space
        self.count, self.top, self.stat = seeds["count"], seeds["top"], seeds["statistic"]
        self.seeds = [control.seed + i for i in range(self.count)]
        self.trials, self.budget, self.log = trials, budget, log
        self.started: dict[str, float] = {}  # Tune trial id -> when it was placed
        self.races: dict[str, Race] = {}
        self.runs: dict[str, tuple[str, int]] = {}  # Tune trial id -> (cid, seed index)
        self.resume_at: dict[tuple[str, int], int] = {}  # a checkpointed run's step
        self.trained: dict[str, tuple[int, int]] = {}  # Tune trial id -> (from, to) step
        # Per number of seeds j: how many configurations ran seeds 0..j-1 normally, and the
        # best `top` rank keys among them (a key never changes once its seeds have run).
        self.peers: dict[int, int] = {}
        self.best: dict[int, list] = {}
        self.undecided: set[str] = set()  # ran a seed, not told, nothing queued or running
        self.waiting: set[str] = set()  # has runs queued (kept so a step costs the same
        # at the ten-thousandth configuration as at the first)
        self.first_in_flight: set[str] = set()  # its first seed queued or running
        self.ended_runs = 0
        self.finished = False
        self.revive = revive and budget.steps is not None
        self.paused: set[tuple[str, int]] = set()  # collapsed runs (their values: the pause's)
        self.revive_first: set[tuple[str, int]] = set()  # revivals a kill interrupted
        self.revival_trials: set[str] = set()  # Tune trial ids that revive a run
        self.revived = 0
        self.revived_keys: list[str] = []  # trial store entries a revival rewrote (restore)

    # ---- Tune's side ------------------------------------------------------------------------
    def suggest(self, trial_id: str):
        if self.finished:
            return Searcher.FINISHED
        self._decide()
        run = self._next_queued()
        if run is None and self._can_grow() and self.budget.fits(self.control.steps):
            run = self._new_configuration()  # asked only once it can start at once
        revival = run is None and not self._can_grow()
        if revival:
            run = self._next_revival()
        if run is None or not self.budget.fits(self._remaining(*run)):
            if not self.runs:  # nothing running: nothing will change
                self._end()
                return Searcher.FINISHED
            return None
        race, j = run
        self._unqueue(race, j)
        race.running.add(j)
        self.runs[trial_id] = (race.cid, j)
        self.started[trial_id] = time.time()
        start = self.resume_at.get((race.cid, j), 0)
        self.trained[trial_id] = (start, start)
        self.budget.committed[trial_id] = self.control.steps - start
        if revival:
            self.paused.discard((race.cid, j))
            self.revive_first.discard((race.cid, j))
            self.revival_trials.add(trial_id)
            return {**race.params, SEED: self.seeds[j], REVIVE: True}
        return {**race.params, SEED: self.seeds[j]}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        cid, j = self.runs.get(trial_id, (None, None))
        if cid is None or result.get("reused"):
            return
        step = int(result.get("step", 0))
        start, _ = self.trained[trial_id]
        self.trained[trial_id] = (start, max(step, start))
        self._intermediate(self.races[cid], j, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        cid, j = self.runs.pop(trial_id, (None, None))
        self.budget.committed.pop(trial_id, None)
        placed = self.started.pop(trial_id, None)
        if placed is not None and result and not result.get("reused"):
            self._observe(run_s=time.time() - placed)
        start, end = self.trained.pop(trial_id, (0, 0))
        revival = trial_id in self.revival_trials
        self.revival_trials.discard(trial_id)
        if cid is None:
            return
        race = self.races[cid]
        race.running.discard(j)
        if result and not result.get("reused"):  # the last report comes only here
            end = max(end, int(result.get("step", 0) or 0))
        self.budget.spent_steps += end - start
        if self.budget.expired:  # stopped by the hour budget: resumable, not an outcome
            self.resume_at[(cid, j)] = end
            if revival:
                self.revive_first.add((cid, j))
            else:
                self._queue(race, j)
            return
        if revival:
            self._revived(race, j, error, result or {})
            return
        self.ended_runs += 1
        if j == 0:
            self.first_in_flight.discard(cid)
        result = result or {}
        reason = _ended_as(result, error)
        if not result.get("reused"):  # Tune passes a result its scheduler stopped on only here
            self._intermediate(race, j, result)
        self._record(race, j, reason, result.get(self.control.metric),
                     result.get("objective"))
        if reason == layout.COLLAPSED:
            self._pause(race, j, end)
        self._rank(race)
        if not race.busy():
            self.undecided.add(cid)
        self._decide()

    def idle(self) -> bool:
        """Nothing to run: every race decided and no new configuration allowed."""
        self._decide()
        return not self.waiting and not self._can_grow() and self._next_revival() is None

    def summary(self) -> str:
        runs = self.ended_runs
        cap = "" if self.trials is None else f" of {self.trials}"
        text = f"{len(self.races)}{cap} configurations, {runs} runs ended"
        if self.budget.steps is not None:
            text += f", {self.budget.spent_steps} of {self.budget.steps} budget steps spent"
        if self.budget.hours is not None:
            text += (f", {self.budget.elapsed_s() / 3600:.3g} of {self.budget.hours:.3g} budget "
                     "hours spent")
        if self.revived:
            text += f", {self.revived} collapsed run(s) revived"
        return text

    def _intermediate(self, race: Race, j: int, result: dict) -> None:
        """The first seed's finite objective, as the study's intermediate value at its step
        (what a PRUNED trial keeps)."""
        value = result.get("objective")
        if j == 0 and race.number is not None and not race.told \
                and isinstance(value, (int, float)) and math.isfinite(value):
            self._report(race.number, float(value), int(result.get("step", 0) or 0))

    # ---- revival ---------------------------------------------------------------------------
    def _pause(self, race: Race, j: int, step: int) -> None:
        """A collapsed run becomes revivable, unless it collapsed at its last report: then
        nothing is left to train."""
        if self.revive and step < self.control.steps:
            self.paused.add((race.cid, j))
            self.resume_at[(race.cid, j)] = step

    def _next_revival(self) -> tuple[Race, int] | None:
        """An interrupted revival, else the paused run with the best metric at its pause, of
        those whose remaining steps fit in the budget now."""
        if not self.revive:
            return None
        fits = [p for p in (*sorted(self.revive_first), *self.paused)
                if self.budget.fits(self._remaining(self.races[p[0]], p[1]))]
        if not fits:
            return None
        sign = -1.0 if self.control.mode == "max" else 1.0

        def order(p):
            v = self.races[p[0]].values.get(p[1], math.nan)
            return (p not in self.revive_first, sign * v if math.isfinite(v) else math.inf, p)

        cid, j = min(fits, key=order)
        return self.races[cid], j

    def _revived(self, race: Race, j: int, error: bool, result: dict) -> None:
        """A revival ended: the run's outcome is its revived one; Optuna gets it as a trial of
        its own (the configuration's first was told when the run paused)."""
        self.revived += 1
        reason = _ended_as(result, error)
        self._record(race, j, reason, result.get(self.control.metric), result.get("objective"))
        self._rank(race)
        self._tell_revival(race, j, reason, result.get("objective"))
        self._decide()

    def _tell_revival(self, race: Race, j: int, reason: str, objective) -> None:
        import optuna

        if race.number is None or reason == layout.FAILED:
            return
        state, value = optuna.trial.TrialState.COMPLETE, _num(objective)
        if reason == layout.ASHA:
            state, value = optuna.trial.TrialState.PRUNED, None
        elif value is None or math.isnan(value):
            return
        try:
            first = self.study._storage.get_trial(self._trial_id(race.number))
            self.study.add_trial(optuna.trial.create_trial(
                params=first.params, distributions=first.distributions, value=value,
                state=state, user_attrs={CID_ATTR: race.cid, REVIVED_ATTR: j}))
        except Exception as exc:  # noqa: BLE001 - the study must never stop the sweep
            self.log(f"[gansweep] could not tell Optuna of revived {race.cid}: {exc}")

    # ---- the races --------------------------------------------------------------------------
    def _record(self, race: Race, j: int, reason: str, value, objective) -> None:
        race.reasons[j] = reason
        if isinstance(value, (int, float)) and math.isfinite(value):
            race.values[j] = float(value)
        if isinstance(objective, (int, float)) and not math.isnan(objective):
            race.objectives[j] = float(objective)

    def _rank(self, race: Race) -> None:
        """Enter the configuration among the peers of each seed prefix it has newly run."""
        j = race.done()
        if any(race.reasons[i] != layout.COMPLETED for i in range(j)):
            j = next(i for i in range(j) if race.reasons[i] != layout.COMPLETED)
        for p in range(race.ranked_to + 1, j + 1):
            self.peers[p] = self.peers.get(p, 0) + 1
            best = self.best.setdefault(p, [])
            bisect.insort(best, self._rank_key(race, p))
            del best[self.top:]
        race.ranked_to = max(race.ranked_to, j)

    def _queue(self, race: Race, j: int) -> None:
        race.queued.add(j)
        self.waiting.add(race.cid)
        if j == 0:
            self.first_in_flight.add(race.cid)

    def _unqueue(self, race: Race, j: int) -> None:
        race.queued.discard(j)
        if not race.queued:
            self.waiting.discard(race.cid)

    def _remaining(self, race: Race, j: int) -> int:
        return self.control.steps - self.resume_at.get((race.cid, j), 0)

    def _rank_key(self, race: Race, j: int) -> tuple[float, str]:
        vals = [race.values[i] for i in range(j) if i in race.values]
        s = statistic(vals, self.stat, self.control.mode) if len(vals) == j else math.nan
        sign = 1.0 if self.control.mode == "min" else -1.0
        return (sign * s if not math.isnan(s) else math.inf, race.cid)

    def _can_grow(self) -> bool:
        """A new configuration may still be asked for."""
        return (not self.finished and (self.trials is None or len(self.races) < self.trials)
                and not self.budget.exhausted(self.control.steps))

    def _decide(self) -> None:
        """Promote, or end the race of, every configuration waiting on a decision."""
        smallest = min([self._remaining(self.races[c], j) for c in self.waiting
                        for j in self.races[c].queued] + [self.control.steps])
        exhausted = self.budget.exhausted(smallest)
        first_seeds_coming = self._can_grow() or bool(self.first_in_flight)
        for cid in sorted(self.undecided):
            race = self.races[cid]
            j = race.done()
            if race.abnormal() or j >= self.count or exhausted:
                self._tell(race)
                continue
            if j == 1 and self.peers.get(1, 0) < 2 * self.top and first_seeds_coming:
                continue  # too few configurations have run the first seed to judge it yet
            if self._rank_key(race, j) <= self.best[j][-1]:  # among the best `top`
                self._queue(race, j)
                self.undecided.discard(cid)
            else:
                self._tell(race)

    def _tell(self, race: Race) -> None:
        import optuna

        race.told = True
        for j in list(race.queued):
            self._unqueue(race, j)
        self.undecided.discard(race.cid)
        if race.number is None:
            return
        states = set(race.reasons.values())
        objs = [race.objectives[i] for i in sorted(race.objectives)]
        if layout.FAILED in states or not objs and layout.ASHA not in states:
            state, value = optuna.trial.TrialState.FAIL, None
        elif layout.ASHA in states:
            state, value = optuna.trial.TrialState.PRUNED, None
        else:
            state = optuna.trial.TrialState.COMPLETE
            value = statistic(objs, self.stat, self.control.mode)
        try:
            self.study.tell(race.number, value, state=state, skip_if_finished=True)
        except Exception as exc:  # noqa: BLE001 - the study must never stop the sweep
            self.log(f"[gansweep] could not tell Optuna trial {race.number}: {exc}")

    def _report(self, number: int, value: float, step: int) -> None:
        import warnings

        import optuna

        try:
            trial = optuna.trial.Trial(self.study, self._trial_id(number))
            with warnings.catch_warnings():  # a retried run reports its steps again
                warnings.simplefilter("ignore")
                trial.report(value, step)
        except Exception:  # noqa: BLE001 - intermediate values are for readers only
            pass

    def _next_queued(self) -> tuple[Race, int] | None:
        """A promoted configuration's next seed, or an interrupted run to resume: these go
        before new configurations, interrupted runs first, then the best ranked."""
        waiting = [self.races[c] for c in self.waiting]
        if not waiting:
            return None

        def order(r: Race):
            j = min(r.queued)
            return ((r.cid, j) not in self.resume_at, self._rank_key(r, j))

        race = min(waiting, key=order)
        return race, min(race.queued)

    def _new_configuration(self) -> tuple[Race, int] | None:
        import optuna

        for _ in range(20):  # a configuration suggested again is told what it scored
            t0 = time.perf_counter()
            trial = self.study.ask()
            params = self.space(trial)
            self._observe(suggest_s=time.perf_counter() - t0)
            cid = self.control.config_key(params)
            if cid not in self.races:
                trial.set_user_attr(CID_ATTR, cid)
                race = self.races[cid] = Race(cid, params, trial.number)
                self.first_in_flight.add(cid)
                return race, 0
            objs = [v for _, v in sorted(self.races[cid].objectives.items())]
            if objs:
                self.study.tell(trial, statistic(objs, self.stat, self.control.mode))
            else:
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return None

    def _observe(self, **durations) -> None:
        observe = getattr(self.study.sampler, "observe", None)
        line = observe(**durations) if observe else None
        if line:
            self.log(line)

    def _end(self) -> None:
        self.finished = True
        for race in self.races.values():
            if not race.told and not race.running and race.reasons:
                self._tell(race)

    def _trial_id(self, number: int) -> int:
        return self.study._storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, number)

    # ---- a driver (re)starting ----------------------------------------------------------------
    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        """Tune's own searcher snapshot is not used: the study and the trial store are this
        searcher's state, written as results arrive, and `restore` rebuilds it from them."""

    def restore(self, store: layout.TrialStore) -> int:
        """Rebuild the races from the trial store and the study; returns how many runs will
        resume from a checkpoint."""
        import optuna

        numbers: dict[str, int] = {}
        open_numbers: dict[str, int] = {}
        told_revivals: set[tuple[str, int]] = set()
        revivals_ended = []
        for t in self.study.get_trials(deepcopy=False):
            cid = t.user_attrs.get(CID_ATTR)
            if REVIVED_ATTR in t.user_attrs:
                told_revivals.add((cid, int(t.user_attrs[REVIVED_ATTR])))
                continue
            if t.state == optuna.trial.TrialState.RUNNING:
                if cid is None:  # left by a driver before gansweep's searcher: fail it, its
                    self.study.tell(t.number, state=optuna.trial.TrialState.FAIL)  # config
                    continue  # is queued again below
                open_numbers[cid] = t.number
            elif cid is not None:
                numbers[cid] = t.number
        resumed = 0
        for e in _store_entries(store):
            cid = self.control.config_key(e["config"], resolved=True)
            race = self.races.get(cid)
            if race is None:
                race = self.races[cid] = Race(cid, e["config"])
                race.number = open_numbers.get(cid, numbers.get(cid))
                race.told = cid not in open_numbers
            if e["seed"] not in self.seeds:
                continue
            j = self.seeds.index(e["seed"])
            if e["result"] is not None:
                self.ended_runs += 1
                self.budget.spent_steps += e["step"]
                r = e["result"]
                self._record(race, j, r.get("stop_reason", layout.FAILED),
                             _num((r.get("final") or {}).get(self.control.metric)),
                             _num(r.get("objective")))
                if r.get("revived"):
                    self.revived += 1
                    self.revived_keys.append(e["key"])
                    if (cid, j) not in told_revivals:
                        revivals_ended.append((race, j, r))
                elif race.reasons[j] == layout.COLLAPSED:
                    self._pause(race, j, e["step"])
                continue
            self.budget.spent_steps += e["step"]
            self.resume_at[(cid, j)] = e["step"]
            resumed += 1
            if e["revived"] is not None:  # a revival a kill interrupted: it goes on first
                self.revived_keys.append(e["key"])
                paused = e["revived"]
                self._record(race, j, layout.COLLAPSED,
                             _num((paused.get("final") or {}).get(self.control.metric)),
                             _num(paused.get("objective")))
                if self.revive:
                    self.revive_first.add((cid, j))
                continue
            if not race.told:  # placed again before anything new
                self._queue(race, j)
            else:  # an older driver's interrupted configuration: Optuna suggests it again
                self.study.enqueue_trial(e["config"], skip_if_exists=False)
                del self.races[cid]
        for cid, number in open_numbers.items():
            if cid not in self.races:  # asked, then the driver died before its first write
                self.study.tell(number, state=optuna.trial.TrialState.FAIL)
        for race in self.races.values():
            self._rank(race)
            if not race.told and not race.busy() and race.reasons:
                self.undecided.add(race.cid)
        for race, j, r in revivals_ended:  # the driver died before telling the study
            self._tell_revival(race, j, r.get("stop_reason", layout.FAILED), r.get("objective"))
        return resumed


def _ended_as(result: dict, error: bool) -> str:
    """How a run ended, from its last result."""
    reason = layout.FAILED if error else result.get("stop_reason") or layout.FAILED
    if reason == layout.RUNNING:  # stopped from outside before its last step: ASHA
        reason = layout.ASHA
    return reason


def _num(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v


def _store_entries(store: layout.TrialStore) -> list[dict]:
    """Every run in the store: its configuration, seed, steps trained and result (if any)."""
    out = []
    for key in store.keys():
        record = store.read_json(key, layout.CONFIG)
        if record is None:
            continue
        result = store.result(key)
        if result is not None:
            step = int(_num(result.get("stop_step")) or 0)
        else:
            csv = store.read(key, layout.METRICS) or b""
            lines = csv.decode(errors="replace").strip().splitlines()
            step = int(_num(lines[-1].split(",")[0]) or 0) if len(lines) > 1 else 0
        revived = store.read_json(key, layout.REVIVED) if result is None else None
        out.append({"key": key, "config": record["config"], "params": record["config"],
                    "seed": int(record.get("seed", 0)), "step": step, "result": result,
                    "revived": revived})
    return out
