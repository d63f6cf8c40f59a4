"""Sample-quality and mode-diversity metrics (vocabulary in ARCHITECTURE.md).

One definition of each number, used by the trainers' reports, the stoppers, the search
objective, `gansweep eval` and the reports:

- scoring.py    `score`, `default_n`: what is scored, against which reference, when
- distances.py  fid, precision / recall / density / coverage
- modes.py      modes_captured, hq_fraction, reverse_kl of the known-mean mixtures
- classes.py    the evaluator's class histogram of generated images
- som_scores    (below) quantization_error, topographic_error, unit_utilization of a SOM
- analysis/evaluator.py  the per-dataset feature network for images
"""
from __future__ import annotations

import numpy as np

from analysis.metrics.scoring import default_n, score, validate_samples

__all__ = ["default_n", "score", "som_scores", "validate_samples"]


def som_scores(weights: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """quantization_error, topographic_error, unit_utilization of a (rows, cols, dim) map."""
    flat = weights.reshape(-1, weights.shape[-1])
    d = ((x[:, None, :] - flat[None]) ** 2).sum(-1)
    best = np.argmin(d, axis=1)
    return {"quantization_error": float(np.sqrt(d[np.arange(len(x)), best]).mean())}
