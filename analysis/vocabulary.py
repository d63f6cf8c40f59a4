"""The metric vocabulary every package shares: names, directions, and which metrics apply to
what a trainer leaves behind.

`analysis` owns it because `jobs` may import `analysis` but never the other way round: the
spec's objective check, `gansweep status` and the reports all read the same table. What a
family is scored on follows from its trainer's OUTPUT kind ("samples" in data space, or a
map's "weights"), never from its name, so a new family needs no entry here.
"""
from __future__ import annotations

# Objective metrics and their direction.
DIRECTIONS = {
    "fid": "min", "precision": "max", "recall": "max", "density": "max", "coverage": "max",
    "mode_diversity": "max", "modes_captured": "max", "hq_fraction": "max",
    "reverse_kl": "min", "mixture_score": "max", "quantization_error": "min",
    "topographic_error": "min",
    "unit_utilization": "max",
    # What a run cost (jobs/loop.py adds them to every report): wall seconds spent training
    # and scoring (cumulative over resumes), steps per such second, and those seconds times
    # the GPUs one trial holds (resources.gpu). A sweep pairs one with a quality metric.
    "train_seconds": "min", "steps_per_second": "max", "gpu_seconds": "min",
}
COST_METRICS = frozenset({"train_seconds", "steps_per_second", "gpu_seconds"})
MAP_METRICS = frozenset({"quantization_error", "topographic_error", "unit_utilization"})
MIXTURE_METRICS = frozenset({"modes_captured", "hq_fraction", "reverse_kl", "mixture_score"})
MIXTURES = frozenset({"ring8", "grid25"})

# Per OUTPUT kind: the metrics that apply, the default objective (on mixtures / elsewhere),
# and what one training step is.
OUTPUT_KINDS = ("samples", "weights")
DEFAULT_METRIC = {"samples": ("mixture_score", "fid"),
                  "weights": ("quantization_error", "quantization_error")}
STEP_NAME = {"samples": "training step", "weights": "epoch"}

# Training losses as reported (`loss_d` is the critic's loss for the WGANs).
LOSSES = ("loss_g", "loss_d")
CRITIC_TRAINERS = frozenset({"wgan", "wgan-gp"})


def metrics_for(kind: str) -> frozenset[str]:
    """The objectives that apply to a trainer whose OUTPUT is `kind`."""
    if kind == "weights":
        return MAP_METRICS | COST_METRICS
    return frozenset(DIRECTIONS) - MAP_METRICS


def kind_of_metric(metric: str | list | tuple) -> str:
    """The OUTPUT kind a sweep with this objective (or these objectives) scores (what readers
    of a sweep use)."""
    names = [metric] if isinstance(metric, str) else list(metric)
    return "weights" if any(m in MAP_METRICS for m in names) else "samples"


def default_metric(kind: str, dataset_name: str) -> str:
    on_mixture, otherwise = DEFAULT_METRIC[kind]
    return on_mixture if dataset_name in MIXTURES else otherwise


class Objectives:
    """What a sweep optimises, for a class with `metric` and `metric_2` (None: one
    objective): the spec (jobs/spec.py) and a sweep as read back (analysis/sweeps.py)."""

    metric: str
    metric_2: str | None

    @property
    def mode(self) -> str:
        """The (first) objective's direction."""
        return DIRECTIONS[self.metric]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The objectives: one, or two for a Pareto front."""
        return (self.metric,) if self.metric_2 is None else (self.metric, self.metric_2)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(DIRECTIONS[m] for m in self.metrics)
