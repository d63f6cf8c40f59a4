"""Collapse detection, kept inside the trial so its window survives in the checkpoint.

Ray Tune saves no scheduler or stopper state on resume; a detector whose count lived there
would forget, after an interruption, that a run had been collapsing for two reports.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class CollapseRule:
    """The spec's collapse settings, resolved for one trainer (its signal) and run length."""

    signal: str = "mode_diversity"
    threshold: float = 0.25
    patience: int = 3
    grace_steps: int = 0
    enabled: bool = True
    trend: bool = False

    def detector(self) -> CollapseDetector:
        return CollapseDetector(**asdict(self))


@dataclass
class CollapseDetector:
    signal: str = "mode_diversity"  # the trainer's COLLAPSE_SIGNAL
    threshold: float = 0.25
    patience: int = 3
    grace_steps: int = 0
    enabled: bool = True
    # Judge on the trend too: a run under the threshold whose signal rose over the last
    # `patience` reports (it is gaining modes back) is not stopped yet.
    trend: bool = False
    below: int = 0  # consecutive reports under the threshold, after the grace period
    window: list[float] = field(default_factory=list)  # recent values, for reports

    def update(self, row: dict) -> bool:
        """Record a report; True when the run has collapsed.

        Reports at a step >= grace_steps count (as with ASHA's grace period, the report at
        grace_steps is judged), so a run below the threshold throughout stops at the
        `patience`-th report from there. A report without the signal (none yet, or a
        diverged row) neither counts nor resets. With `trend`, the run must also not have
        risen over the window: its last value no higher than the window's first."""
        value = row.get(self.signal)
        if value is None or not self.enabled:
            return False
        self.window = (self.window + [float(value)])[-max(self.patience, 1):]
        if row["step"] < self.grace_steps:
            self.below = 0
            return False
        self.below = self.below + 1 if value < self.threshold else 0
        if self.trend and len(self.window) > 1 and self.window[-1] > self.window[0]:
            return False
        return self.below >= self.patience

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key in ("below", "window"):
            setattr(self, key, state[key])
