"""The metric vocabulary every package shares (ARCHITECTURE.md, "Metrics names").

`analysis` owns it because `jobs` may import `analysis` but never the other way round: the
spec's objective check, `gansweep status` and the reports all read the same table.
"""
from __future__ import annotations

# Objective metrics and their direction.
DIRECTIONS = {
    "fid": "min", "precision": "max", "recall": "max", "density": "max", "coverage": "max",
    "mode_diversity": "max", "modes_captured": "max", "hq_fraction": "max",
    "reverse_kl": "min", "quantization_error": "min", "topographic_error": "min",
    "unit_utilization": "max",
}
SOM_METRICS = {"quantization_error", "topographic_error", "unit_utilization"}
MIXTURE_METRICS = {"modes_captured", "hq_fraction", "reverse_kl"}
MIXTURES = {"ring8", "grid25"}

# Training losses as reported (`loss_d` is the critic's loss for the WGANs).
LOSSES = ("loss_g", "loss_d")
CRITIC_TRAINERS = {"wgan", "wgan-gp"}


def better(metric: str, a: float, b: float) -> bool:
    """True when value `a` of `metric` beats `b`."""
    return a < b if DIRECTIONS[metric] == "min" else a > b
