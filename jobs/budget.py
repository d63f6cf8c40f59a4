"""A sweep's compute budget (`budget: {steps, hours}`).

A run is started only when its remaining planned steps fit in what is left after every running
run's remaining planned steps, so a step budget is never exceeded; early stops give their
unspent steps back: a running run holds its remaining planned steps, and when it ends what it
really trained (from the step it started at to its last report) is spent. The hour budget is
wall-clock over driver runs; when it runs out, running trials are stopped and keep their
checkpoints (BudgetStopper), and a resume with a larger budget continues them.

`finish_leaders` (budget-aware racing): a new configuration starts only if its first run and
every leading configuration's remaining seeds (jobs/racing.py `leader_chains`) still fit, so a
budget ends with its leaders judged on every seed rather than with new first seeds cut short.
In steps that is exact; in hours it is estimated from how fast this driver's runs trained,
each leader's seeds at the speed of its own runs (configurations differ several-fold: a first
grid25 search with one median speed for all kept room too late), a new run at the median, over
as many runs as have run at once; a leader's seeds run one after another, so its chain takes
at least their sum. Under an hour budget a run is also not started when, at its configuration's
speed here, it would not end before the hours do: the deadline would stop it unjudged, so in a
search that is not resumed its compute is spent for nothing (a resume with more hours starts it).
"""
from __future__ import annotations

import statistics
import time

from ray.tune.stopper import Stopper


class Budget:
    """What is left of the sweep's budget, counted from the trial store (so a resume after a
    kill counts each trained step once) plus this driver's running runs."""

    def __init__(self, steps: int | None, hours: float | None, spent_steps: int,
                 spent_s: float, finish_leaders: bool = False):
        self.steps, self.hours, self.finish_leaders = steps, hours, finish_leaders
        self.run_speeds: list[float] = []  # steps per second of each run that ended here
        self.speed_of: dict[str, float] = {}  # ... the latest of each configuration's
        self.slots = 1  # the most runs seen running at once
        self.spent_steps, self.prior_s = spent_steps, spent_s
        self.started = time.time()
        # Tune trial id -> the steps a running run may train in all (counted as spent, at
        # what it really trained, when it ends)
        self.committed: dict[str, int] = {}
        self.trained: dict[str, tuple[int, int]] = {}  # Tune trial id -> (from, to) step
        self.expired = False  # the hour budget ran out and running trials were stopped

    def charge(self, steps: int) -> None:
        """Steps trained before this driver run (read from the trial store)."""
        self.spent_steps += steps

    def place(self, trial_id: str, start: int, steps: int) -> None:
        """A run starts at step `start` of its planned `steps`: the rest is held for it."""
        self.committed[trial_id] = steps - start
        self.trained[trial_id] = (start, start)
        self.slots = max(self.slots, len(self.committed))

    def reported(self, trial_id: str, step: int) -> None:
        if trial_id in self.trained:
            start, _ = self.trained[trial_id]
            self.trained[trial_id] = (start, max(step, start))

    def release(self, trial_id: str, step: int | None = None, ran_s: float | None = None,
                cid: str = "") -> int | None:
        """A run ended or was stopped, its last report at `step` if known: what it trained is
        spent and the rest given back; `ran_s`, its seconds from placement to end, times its
        configuration `cid`. Returns the step it reached (None: not placed here)."""
        self.committed.pop(trial_id, None)
        if trial_id not in self.trained:
            return None
        start, end = self.trained.pop(trial_id)
        if step is not None:
            end = max(end, step)
        self.spent_steps += end - start
        if ran_s is not None:
            self.observe_run(end - start, ran_s, cid)
        return end

    def observe_run(self, steps: int, seconds: float, cid: str = "") -> None:
        """A run of configuration `cid` trained `steps` in `seconds`."""
        if steps > 0 and seconds > 0:
            self.run_speeds.append(steps / seconds)
            self.speed_of[cid] = steps / seconds

    def room_for_new(self, steps: int, chains: dict[str, list[int]]) -> bool:
        """`finish_leaders`: whether a new configuration's first run of `steps` fits beside
        the leaders' remaining runs (`chains`: per leading configuration, the steps of each of
        its runs still to start) and what the running runs have left."""
        if not self.finish_leaders or not chains:
            return True
        if self.steps is not None and (self.spent_steps + sum(self.committed.values())
                                       + sum(map(sum, chains.values())) + steps > self.steps):
            return False
        if self.hours is None or not self.run_speeds:
            return True
        median = statistics.median(self.run_speeds)
        running = sum(left - (self.trained[t][1] - self.trained[t][0])
                      for t, left in self.committed.items() if t in self.trained) / median
        chain_s = [sum(c) / self.speed(cid) for cid, c in chains.items()]
        need = max(max(chain_s), (running + sum(chain_s) + steps / median) / self.slots)
        return need <= self.left_s()

    def finishes(self, steps: int, cid: str | None) -> bool:
        """`finish_leaders` under an hour budget: whether a run of configuration `cid` with
        `steps` left ends before the hours do, at that configuration's speed (the median of
        every run's before one of its own has ended)."""
        if not self.finish_leaders or self.hours is None or not self.run_speeds:
            return True
        return steps / self.speed(cid) <= self.left_s()

    def speed(self, cid: str | None) -> float:
        """Steps per second a run of configuration `cid` (None: a new one) should train."""
        return self.speed_of.get(cid, statistics.median(self.run_speeds))

    def left_s(self) -> float:
        return 3600.0 * self.hours - self.elapsed_s()

    def elapsed_s(self) -> float:
        return self.prior_s + time.time() - self.started

    def out_of_time(self) -> bool:
        return self.hours is not None and self.elapsed_s() >= 3600.0 * self.hours

    def fits(self, steps: int) -> bool:
        if self.out_of_time():
            return False
        if self.steps is None:
            return True
        return self.spent_steps + sum(self.committed.values()) + steps <= self.steps

    def exhausted(self, smallest_run: int) -> bool:
        """Nothing more can start, even once the running runs end."""
        return self.out_of_time() or (self.steps is not None
                                      and self.spent_steps + smallest_run > self.steps)

    def cut_short(self) -> int:
        """Runs still held when the hours ran out whose last report is before their last
        planned step: Tune stops them without ending them here. One whose last report came as
        the budget expired ended on its own."""
        return sum(1 for t, left in self.committed.items()
                   if self.trained[t][1] - self.trained[t][0] < left)

    def expiry_text(self) -> str:
        """What the hour budget's end did to the running runs, for the driver's last line."""
        cut = self.cut_short()
        if not cut:
            return "no running trial was cut short. To try more configurations:"
        if cut == 1:
            return "1 running trial was stopped and keeps its checkpoint. Continue with:"
        return f"{cut} running trials were stopped and keep their checkpoints. Continue with:"

    def spent_text(self) -> str:
        """What is spent of each limit, for the driver's lines ('' without a budget)."""
        text = ""
        if self.steps is not None:
            text += f", {self.spent_steps} of {self.steps} budget steps spent"
        if self.hours is not None:
            text += (f", {self.elapsed_s() / 3600:.3g} of {self.hours:.3g} budget hours "
                     "spent")
        return text


class BudgetStopper(Stopper):
    """Stops every trial when the hour budget runs out; they keep their checkpoints."""

    def __init__(self, budget: Budget):
        self.budget = budget

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        if self.budget.out_of_time():
            self.budget.expired = True
        return self.budget.expired
