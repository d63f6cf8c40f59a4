"""A sweep's compute budget (`budget: {steps, hours}`).

A run is started only when its remaining planned steps fit in what is left after every running
run's remaining planned steps, so a step budget is never exceeded; early stops give their
unspent steps back. The hour budget is wall-clock over driver runs; when it runs out, running
trials are stopped and keep their checkpoints (BudgetStopper), and a resume with a larger
budget continues them.
"""
from __future__ import annotations

import time

from ray.tune.stopper import Stopper


class Budget:
    """What is left of the sweep's budget, counted from the trial store (so a resume after a
    kill counts each trained step once) plus this driver's running runs."""

    def __init__(self, steps: int | None, hours: float | None, spent_steps: int,
                 spent_s: float):
        self.steps, self.hours = steps, hours
        self.spent_steps, self.prior_s = spent_steps, spent_s
        self.started = time.time()
        # Tune trial id -> the steps a running run may train in all (counted as spent, at
        # what it really trained, when it ends)
        self.committed: dict[str, int] = {}
        self.expired = False  # the hour budget ran out and running trials were stopped

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
