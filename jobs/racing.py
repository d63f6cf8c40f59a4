"""Configurations racing over seeds (irace's racing, SMAC's intensification), in plain Python:
no Ray, no Optuna. The searcher (jobs/search.py) tells it when runs start and end and asks it
what runs next and which races are over; tests/test_racing.py drives it directly.

A configuration's runs use the sweep's seeds in a fixed order (seed index 0, 1, 2, ...), so
configurations are compared on the same seeds:

- its first run uses seed index 0;
- after its j-th run it goes on to seed j+1 while its value over seeds 0..j-1
  (analysis/ranking.py, the same value every reader ranks by) is among the best `top` of every
  configuration that ran those seeds normally; at the first seed, among at least 2 x top of
  them while more first seeds are coming, so the first few configurations wait for enough
  peers rather than all being promoted;
- runs of promoted configurations go before new configurations, interrupted runs first;
- its race ends when it loses, reaches `count` seeds, a run ends abnormally (collapsed,
  diverged, stopped by ASHA, failed: not a configuration that trains well on every seed), or
  the budget can start none of its runs. A configuration that lost once never races again (the
  bar only rises), so its study trial is told once, when its race ends.

A run an hour budget stops is no outcome: it resumes from its checkpoint before anything new.

Two objectives (`metric: [fid, gpu_seconds]`): a configuration's standing among the peers of
a seed prefix is its place in analysis/ranking.py's Pareto order of their values (`seeds.statistic`
per objective): by non-dominated front, then the knee, then the first objective; it goes on
while among the first `top` of that order. Everything else (which run goes next, revival)
orders by the first objective.

Revival (`early_stop.collapse.revive`): a collapsed run is a pause at the step it collapsed.
Once nothing new may start, `next_revival` picks an interrupted revival first, then the paused
run with the best metric at its pause, of those whose remaining steps fit.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from gansweep.analysis import ranking
from gansweep.analysis.layout import COLLAPSED, COMPLETED

Run = tuple[str, int]  # (configuration key, seed index)


@dataclass
class Race:
    """One configuration and its runs, seed index -> outcome."""

    cid: str
    params: dict
    number: int | None = None  # its study trial, once it has one
    values: dict[int, float] = field(default_factory=dict)  # the metric as measured
    objectives: dict[int, float] = field(default_factory=dict)  # what each run reported
    values_2: dict[int, float] = field(default_factory=dict)  # the same, second objective
    objectives_2: dict[int, float] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)  # how each run ended
    running: set[int] = field(default_factory=set)
    queued: set[int] = field(default_factory=set)
    told: bool = False  # its race is over
    ranked_to: int = 0  # seed prefixes already entered among the peers

    def done(self) -> int:
        """Consecutive seeds run to an end from the first."""
        j = 0
        while j in self.reasons:
            j += 1
        return j

    def abnormal(self) -> bool:
        return any(r != COMPLETED for r in self.reasons.values())

    def busy(self) -> bool:
        return bool(self.running or self.queued)


class Racing:
    def __init__(self, count: int, top: int, statistic: str, mode: str, steps: int,
                 revive: bool = False, modes: tuple[str, ...] | None = None):
        self.count, self.top, self.statistic, self.mode = count, top, statistic, mode
        # two objectives: their directions, and per seed prefix each peer's values
        self.modes = tuple(modes) if modes and len(modes) == 2 else None
        self.points: dict[int, dict[str, tuple[float, float]]] = {}
        self.steps, self.revive = steps, revive
        self.races: dict[str, Race] = {}
        # Per number of seeds j: how many configurations ran seeds 0..j-1 normally, and the
        # best `top` rank keys among them (a key never changes once its seeds have run).
        self.peers: dict[int, int] = {}
        self.best: dict[int, list] = {}
        self.undecided: set[str] = set()  # ran a seed, race not over, nothing queued or running
        self.waiting: set[str] = set()  # has runs queued (kept so a step costs the same
        # at the ten-thousandth configuration as at the first)
        self.first_in_flight: set[str] = set()  # its first seed queued or running
        self.resume_at: dict[Run, int] = {}  # a checkpointed run's step
        self.paused: set[Run] = set()  # collapsed runs (their values: the pause's)
        self.revive_first: set[Run] = set()  # revivals an hour budget or a kill interrupted
        self.ended_runs = 0
        self.revived = 0

    # ---- configurations ------------------------------------------------------------------
    def add(self, cid: str, params: dict, number: int | None = None) -> Race:
        """A new configuration, its first seed about to run."""
        race = self.races[cid] = Race(cid, params, number)
        self.first_in_flight.add(cid)
        return race

    def known(self, cid: str, params: dict, number: int | None, told: bool) -> Race:
        """A configuration an earlier driver run started (restoring)."""
        race = self.races[cid] = Race(cid, params, number, told=told)
        return race

    def forget(self, cid: str) -> None:
        del self.races[cid]

    def rank_key(self, race: Race, j: int) -> tuple[float, str]:
        """How the configuration ranks among those that ran seeds 0..j-1."""
        values = [race.values.get(i, math.nan) for i in range(j)]
        value = ranking.configuration_value(values, self.statistic, self.mode)
        return ranking.key(value, self.mode), race.cid

    def point(self, race: Race, j: int) -> tuple[float, float]:
        """Two objectives: the configuration's value in each over seeds 0..j-1."""
        return tuple(ranking.configuration_value([vals.get(i, math.nan) for i in range(j)],
                                                 self.statistic, mode)
                     for vals, mode in ((race.values, self.modes[0]),
                                        (race.values_2, self.modes[1])))

    def leaders(self, j: int) -> set[str]:
        """Two objectives: the first `top` of the peers of seeds 0..j-1 in the Pareto order."""
        peers = self.points.get(j, {})
        cids = sorted(peers)
        order = ranking.pareto_order([peers[c] for c in cids], self.modes, cids)
        return {cids[i] for i in order[:self.top]}

    def remaining(self, race: Race, j: int) -> int:
        """The steps its run of seed j has left to train."""
        return self.steps - self.resume_at.get((race.cid, j), 0)

    # ---- runs --------------------------------------------------------------------------------
    def start(self, race: Race, j: int, revival: bool = False) -> int:
        """A run starts; returns the step it starts from."""
        self._unqueue(race, j)
        race.running.add(j)
        if revival:
            self.paused.discard((race.cid, j))
            self.revive_first.discard((race.cid, j))
        return self.resume_at.get((race.cid, j), 0)

    def interrupted(self, race: Race, j: int, step: int, revival: bool = False) -> None:
        """The hour budget stopped a run at `step`: no outcome; it resumes there first."""
        race.running.discard(j)
        self.resume_at[(race.cid, j)] = step
        if revival:
            self.revive_first.add((race.cid, j))
        else:
            self.queue(race, j)

    def ended(self, race: Race, j: int, reason: str, value, objective, step: int,
              value_2=None, objective_2=None) -> None:
        """A run ended (on its own, stopped by ASHA, or failed) at `step`."""
        race.running.discard(j)
        self.ended_runs += 1
        if j == 0:
            self.first_in_flight.discard(race.cid)
        self.record(race, j, reason, value, objective, value_2, objective_2)
        if reason == COLLAPSED:
            self.pause(race, j, step)
        self.enter(race)
        if not race.busy():
            self.undecided.add(race.cid)

    def revival_ended(self, race: Race, j: int, reason: str, value, objective,
                      value_2=None, objective_2=None) -> None:
        """A revival ended: the run's outcome is its revived one (its race was over already)."""
        race.running.discard(j)
        self.revived += 1
        self.record(race, j, reason, value, objective, value_2, objective_2)
        self.enter(race)

    def record(self, race: Race, j: int, reason: str, value, objective,
               value_2=None, objective_2=None) -> None:
        race.reasons[j] = reason
        for target, v in ((race.values, value), (race.values_2, value_2)):
            if isinstance(v, (int, float)) and math.isfinite(v):
                target[j] = float(v)
        for target, v in ((race.objectives, objective), (race.objectives_2, objective_2)):
            if isinstance(v, (int, float)) and not math.isnan(v):
                target[j] = float(v)

    def enter(self, race: Race) -> None:
        """Enter the configuration among the peers of each seed prefix it has newly run
        normally."""
        j = race.done()
        if any(race.reasons[i] != COMPLETED for i in range(j)):
            j = next(i for i in range(j) if race.reasons[i] != COMPLETED)
        for p in range(race.ranked_to + 1, j + 1):
            self.peers[p] = self.peers.get(p, 0) + 1
            best = self.best.setdefault(p, [])
            bisect.insort(best, self.rank_key(race, p))
            del best[self.top:]
            if self.modes:
                self.points.setdefault(p, {})[race.cid] = self.point(race, p)
        race.ranked_to = max(race.ranked_to, j)

    def queue(self, race: Race, j: int) -> None:
        race.queued.add(j)
        self.waiting.add(race.cid)
        if j == 0:
            self.first_in_flight.add(race.cid)

    def _unqueue(self, race: Race, j: int) -> None:
        race.queued.discard(j)
        if not race.queued:
            self.waiting.discard(race.cid)

    # ---- what the trial store holds (a driver restoring) -------------------------------------
    def stored_result(self, race: Race, j: int, reason: str, value, objective, step: int,
                      revived: bool, value_2=None, objective_2=None) -> None:
        """A run that ended under an earlier driver."""
        self.ended_runs += 1
        self.record(race, j, reason, value, objective, value_2, objective_2)
        if revived:
            self.revived += 1
        elif reason == COLLAPSED:
            self.pause(race, j, step)

    def stored_checkpoint(self, race: Race, j: int, step: int) -> bool:
        """A run interrupted at `step`: it resumes before anything new if its race is not
        over (returns whether it will)."""
        self.resume_at[(race.cid, j)] = step
        if race.told:
            return False
        self.queue(race, j)
        return True

    def stored_revival(self, race: Race, j: int, step: int, value, objective,
                       value_2=None, objective_2=None) -> None:
        """A revival interrupted at `step`; `value`, `objective`: its pause's."""
        self.resume_at[(race.cid, j)] = step
        self.record(race, j, COLLAPSED, value, objective, value_2, objective_2)
        if self.revive:
            self.revive_first.add((race.cid, j))

    def settle(self) -> None:
        """After a restore: every configuration entered among its peers, and those with
        nothing to run awaiting a decision."""
        for race in self.races.values():
            self.enter(race)
            if not race.told and not race.busy() and race.reasons:
                self.undecided.add(race.cid)

    # ---- decisions ---------------------------------------------------------------------------
    def decide(self, can_grow: bool, exhausted: Callable[[int], bool],
               reserving: bool = False) -> list[Race]:
        """Promote, or end the race of, every configuration waiting on a decision. `can_grow`:
        new configurations may still come; `exhausted(steps)`: a run of that many steps can
        never start; `reserving`: the budget is kept for the leaders (`finish_leaders`), so
        first seeds still running are not waited for (a slot would stand idle). Returns the
        races that ended."""
        smallest = min([self.remaining(self.races[c], j) for c in self.waiting
                        for j in self.races[c].queued] + [self.steps])
        out_of_budget = exhausted(smallest)
        first_seeds_coming = can_grow or (bool(self.first_in_flight) and not reserving)
        leaders: dict[int, set[str]] = {}  # two objectives: per seed prefix, this decision's
        over = []
        for cid in sorted(self.undecided):
            race = self.races[cid]
            j = race.done()
            if race.abnormal() or j >= self.count or out_of_budget:
                over.append(self.close(race))
                continue
            if j == 1 and self.peers.get(1, 0) < 2 * self.top and first_seeds_coming:
                continue  # too few configurations have run the first seed to judge it yet
            if self.modes:
                if j not in leaders:
                    leaders[j] = self.leaders(j)
                promoted = cid in leaders[j]
            else:
                promoted = self.rank_key(race, j) <= self.best[j][-1]  # among the best `top`
            if promoted:
                self.queue(race, j)
                self.undecided.discard(cid)
            else:
                over.append(self.close(race))
        return over

    def close(self, race: Race) -> Race:
        """End a configuration's race."""
        race.told = True
        for j in list(race.queued):
            self._unqueue(race, j)
        self.undecided.discard(race.cid)
        return race

    def end(self) -> list[Race]:
        """Nothing more will run: end every race that ran a seed and is not over."""
        return [self.close(r) for r in self.races.values()
                if not r.told and not r.running and r.reasons]

    def next_queued(self) -> tuple[Race, int] | None:
        """A promoted configuration's next seed, or an interrupted run to resume: these go
        before new configurations, interrupted runs first, then the best ranked."""
        waiting = [self.races[c] for c in self.waiting]
        if not waiting:
            return None

        def order(r: Race):
            j = min(r.queued)
            return (r.cid, j) not in self.resume_at, self.rank_key(r, j)

        race = min(waiting, key=order)
        return race, min(race.queued)

    def leader_chains(self) -> dict[str, list[int]]:
        """Per configuration leading its peers and racing on (promoted, or would be at its
        next decision; not one still on its first seed), the steps of each of its runs still
        to start: what `budget.finish_leaders` keeps room for."""
        out, leaders = {}, {}
        for race in self.races.values():
            j = race.done()
            if race.told or j == 0 or j >= self.count or race.abnormal():
                continue
            if not (race.queued or race.running):
                if self.modes:
                    if j not in leaders:
                        leaders[j] = self.leaders(j)
                    if race.cid not in leaders[j]:
                        continue
                elif j in self.best and self.rank_key(race, j) > self.best[j][-1]:
                    continue
            chain = [self.remaining(race, i) for i in range(self.count)
                     if i not in race.reasons and i not in race.running]
            if chain:
                out[race.cid] = chain
        return out

    # ---- revival ---------------------------------------------------------------------------
    def pause(self, race: Race, j: int, step: int) -> None:
        """A collapsed run becomes revivable, unless it collapsed at its last report: then
        nothing is left to train."""
        if self.revive and step < self.steps:
            self.paused.add((race.cid, j))
            self.resume_at[(race.cid, j)] = step

    def next_revival(self, fits: Callable[[int], bool]) -> tuple[Race, int] | None:
        """An interrupted revival, else the paused run with the best metric at its pause, of
        those whose remaining steps `fits` the budget now."""
        if not self.revive:
            return None
        fitting = [p for p in (*sorted(self.revive_first), *self.paused)
                   if fits(self.remaining(self.races[p[0]], p[1]))]
        if not fitting:
            return None

        def order(p: Run):
            value = self.races[p[0]].values.get(p[1], math.nan)
            return p not in self.revive_first, ranking.key(value, self.mode), p

        cid, j = min(fitting, key=order)
        return self.races[cid], j
