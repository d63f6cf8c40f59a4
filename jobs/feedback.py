"""What the Optuna study is asked and told (jobs/search.py composes it with jobs/racing.py).

One study trial is one configuration, asked for only when it can start at once. It is told
once, when the configuration's race ends:

- COMPLETE with `seeds.statistic` (analysis/ranking.py) of the objective each run reported, a
  collapsed or diverged run's being the documented penalty: Optuna learns the seed-robust
  value, never a first seed's luck;
- PRUNED when ASHA stopped a run, keeping the first seed's intermediate values;
- FAIL when a run failed, or no run reported an objective.

Two objectives: the study is multi-objective and is told both values, `seeds.statistic` of
each (`objective`, `objective_2`: the penalty is the worst value in each direction).

A revived run is told as a trial of its own with the first's parameters; a configuration the
sampler suggests again is told at once what it scored. The sweep is never stopped by the study:
what cannot be told is logged.

Only public Optuna API, but for `FrozenTrial._trial_id` of a trial an earlier driver left
RUNNING: reporting its resumed first seed's intermediate values needs a `Trial`, and Optuna
offers no public way to reopen one.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping

import optuna

from gansweep.analysis import ranking
from gansweep.analysis.layout import ASHA, FAILED
from gansweep.jobs.racing import Race, Run

CID_ATTR = "gansweep_config"  # user attribute: the configuration's key (no seed)
REVIVED_ATTR = "gansweep_revived"  # ... and the seed index of the run a revival trained on
State = optuna.trial.TrialState


def verdict(race: Race, statistic: str, mode: str, modes: tuple | None = None
            ) -> tuple[State, float | list[float] | None]:
    """What a configuration's study trial is told when its race ends (`modes`: two
    objectives' directions; then the value is a list of two)."""
    states = set(race.reasons.values())
    objectives = [race.objectives[i] for i in sorted(race.objectives)]
    if FAILED in states or not objectives and ASHA not in states:
        return State.FAIL, None
    if ASHA in states:
        return State.PRUNED, None
    if modes:
        second = [race.objectives_2[i] for i in sorted(race.objectives_2)]
        if not second:
            return State.FAIL, None
        return State.COMPLETE, [ranking.statistic(objectives, statistic, modes[0]),
                                ranking.statistic(second, statistic, modes[1])]
    return State.COMPLETE, ranking.statistic(objectives, statistic, mode)


class StudyFeedback:
    def __init__(self, study: optuna.Study, space: Callable, config_key: Callable,
                 statistic: str, mode: str, log=print, modes: tuple | None = None):
        self.study, self.space, self.config_key = study, space, config_key
        self.statistic, self.mode, self.log = statistic, mode, log
        self.modes = tuple(modes) if modes and len(modes) == 2 else None
        self.trials: dict[int, optuna.trial.Trial] = {}  # number -> open trial asked here
        self.reopen: dict[int, int] = {}  # number -> storage id, of those earlier drivers left

    def ask(self, races: Mapping[str, Race]) -> tuple[int, dict, str] | None:
        """A configuration no race has run: (trial number, parameters, configuration key)."""
        for _ in range(20):  # a configuration suggested again is told what it scored
            t0 = time.perf_counter()
            trial = self.study.ask()
            params = self.space(trial)
            self.observe(suggest_s=time.perf_counter() - t0)
            cid = self.config_key(params)
            race = races.get(cid)
            if race is None:
                trial.set_user_attr(CID_ATTR, cid)
                self.trials[trial.number] = trial
                return trial.number, params, cid
            objectives = [v for _, v in sorted(race.objectives.items())]
            second = [v for _, v in sorted(race.objectives_2.items())]
            if objectives and self.modes and second:
                self.study.tell(trial, [ranking.statistic(objectives, self.statistic, m)
                                        for objectives, m in ((objectives, self.modes[0]),
                                                              (second, self.modes[1]))])
            elif objectives and not self.modes:
                self.study.tell(trial, ranking.statistic(objectives, self.statistic, self.mode))
            else:
                self.study.tell(trial, state=State.PRUNED)
        return None

    def intermediate(self, race: Race, j: int, result: dict) -> None:
        """The first seed's finite objective, as the trial's intermediate value at its step
        (what a PRUNED trial keeps, for readers only)."""
        value = result.get("objective")
        if self.modes:  # Optuna keeps no intermediate values of a multi-objective trial
            return
        if j != 0 or race.number is None or race.told \
                or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        try:
            trial = self._open(race.number)
            with warnings.catch_warnings():  # a retried run reports its steps again
                warnings.simplefilter("ignore")
                trial.report(float(value), int(result.get("step", 0) or 0))
        except Exception:  # noqa: BLE001 - intermediate values are for readers only
            pass

    def tell(self, race: Race) -> None:
        """The configuration's race is over."""
        if race.number is None:
            return
        self.trials.pop(race.number, None)
        self.reopen.pop(race.number, None)
        state, value = verdict(race, self.statistic, self.mode, self.modes)
        try:
            self.study.tell(race.number, value, state=state, skip_if_finished=True)
        except Exception as exc:  # noqa: BLE001 - the study must never stop the sweep
            self.log(f"[gansweep] could not tell Optuna trial {race.number}: {exc}")

    def tell_revival(self, race: Race, j: int, reason: str, objective,
                     objective_2=None) -> None:
        """A revival of seed j ended: a trial of its own, with the configuration's parameters."""
        value = _num(objective)
        if race.number is None or reason == FAILED:
            return
        state = State.COMPLETE
        values = None
        if reason == ASHA:
            state, value = State.PRUNED, None
        elif value is None or math.isnan(value):
            return
        elif self.modes:
            second = _num(objective_2)
            if second is None or math.isnan(second):
                return
            values, value = [value, second], None
        try:
            first = next(t for t in self.study.get_trials(deepcopy=False)
                         if t.number == race.number)
            self.study.add_trial(optuna.trial.create_trial(
                params=first.params, distributions=first.distributions, value=value,
                values=values, state=state, user_attrs={CID_ATTR: race.cid, REVIVED_ATTR: j}))
        except Exception as exc:  # noqa: BLE001 - the study must never stop the sweep
            self.log(f"[gansweep] could not tell Optuna of revived {race.cid}: {exc}")

    def observe(self, **durations) -> None:
        """How long a suggestion and a run took, for `sampler: auto` (jobs/samplers.py)."""
        observe = getattr(self.study.sampler, "observe", None)
        line = observe(**durations) if observe else None
        if line:
            self.log(line)

    # ---- a driver (re)starting ----------------------------------------------------------------
    def past(self) -> tuple[dict[str, int], dict[str, int], set[Run]]:
        """What earlier driver runs told the study: the trial number of each configuration
        whose race is over, of each still open, and the revivals told. A RUNNING trial from
        before gansweep's searcher (no configuration key) is failed: its configuration is
        queued again from the trial store."""
        told: dict[str, int] = {}
        open_: dict[str, int] = {}
        revivals: set[Run] = set()
        for t in self.study.get_trials(deepcopy=False):
            cid = t.user_attrs.get(CID_ATTR)
            if REVIVED_ATTR in t.user_attrs:
                revivals.add((cid, int(t.user_attrs[REVIVED_ATTR])))
            elif t.state == State.RUNNING and cid is None:
                self.study.tell(t.number, state=State.FAIL)
            elif t.state == State.RUNNING:
                open_[cid] = t.number
                self.reopen[t.number] = t._trial_id  # the one private attribute (docstring)
            elif cid is not None:
                told[cid] = t.number
        return told, open_, revivals

    def fail(self, number: int) -> None:
        """An open trial whose configuration never wrote a record (its driver died first)."""
        self.reopen.pop(number, None)
        self.study.tell(number, state=State.FAIL)

    def suggest_again(self, params: dict) -> None:
        """An older driver's interrupted configuration: the sampler suggests it next."""
        self.study.enqueue_trial(params, skip_if_exists=False)

    def _open(self, number: int) -> optuna.trial.Trial:
        trial = self.trials.get(number)
        if trial is None:
            trial = self.trials[number] = optuna.trial.Trial(self.study, self.reopen[number])
        return trial


def _num(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
