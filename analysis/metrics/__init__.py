"""Sample-quality, mode-diversity and map metrics (names in analysis/vocabulary.py).

One definition of each number, used by the training loop's reports, the stoppers, the search
objective, `gansweep eval` and the reports:

- scoring.py    `score`, `default_n`: what is scored, against which reference, when
- distances.py  fid, precision / recall / density / coverage
- modes.py      modes_captured, hq_fraction, reverse_kl of the known-mean mixtures
- classes.py    the evaluator's class histogram of generated images
- som_scores    (below) quantization_error, topographic_error, unit_utilization of a map
- score_output  (below) whichever applies to what a trainer leaves (its OUTPUT kind)
- analysis/evaluator.py  the per-dataset feature network for images
"""
from __future__ import annotations

import numpy as np

from gansweep.analysis.metrics import scoring
from gansweep.analysis.metrics.scoring import default_n, score, validate_samples
from gansweep.analysis.vocabulary import MAP_METRICS

__all__ = ["cheap_metrics", "default_n", "score", "score_output", "som_scores",
           "validate_samples"]


def cheap_metrics(data, kind: str = "samples") -> frozenset[str]:
    """What a report scores without `full` for a trainer whose OUTPUT is `kind`: a caller
    that needs more scores fully at once rather than twice. A map's scores are all cheap."""
    return MAP_METRICS if kind == "weights" else scoring.cheap_metrics(data)


def score_output(kind: str, output: np.ndarray, data, full: bool,
                 evaluator=None) -> dict[str, float]:
    """Metrics of a trainer's output against `data.held_out`: samples in data space, or a
    map's (rows, cols, dim) weights. Non-finite samples cannot be placed among neighbours
    and score as `diverged`; a non-finite map scores NaN errors, which the loop reads as
    divergence too (the row keeps the columns a SOM's curves show)."""
    if kind == "weights":
        return som_scores(output, data.held_out.reshape(len(data.held_out), -1))
    if not np.isfinite(output).all():
        return {"diverged": True}
    return score(output, data, full=full, evaluator=evaluator)


def som_scores(weights: np.ndarray, x: np.ndarray, chunk: int | None = None
               ) -> dict[str, float]:
    """quantization_error, topographic_error, unit_utilization of a (rows, cols, dim) map.

    quantization_error: mean Euclidean distance from each sample to its best-matching unit.
    topographic_error: fraction of samples whose best and second-best units are not
    8-neighbours on the rectangular grid (Chebyshev distance > 1, as MiniSom's rectangular
    topology); 0 for a one-unit map, which has no order to break (NaN would read as diverged).
    unit_utilization: fraction of units that are the best match of at least one sample.
    Computed in float64, `chunk` samples at a time (default: ~32 MB per temporary array) to
    bound the (chunk, units) distance matrix.
    """
    rows, cols = weights.shape[:2]
    flat = weights.reshape(rows * cols, -1).astype(np.float64)
    chunk = chunk or max(1, (1 << 22) // max(flat.shape))
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    w2 = (flat * flat).sum(1)
    qe_sum, te_sum = 0.0, 0
    won = np.zeros(rows * cols, dtype=bool)
    for s in range(0, len(x), chunk):
        xb = x[s:s + chunk]
        d = w2 - 2.0 * xb @ flat.T  # + ||x||^2, constant per row: same ordering
        if rows * cols > 1:
            # partitioning at 1 puts the 2nd smallest at 1 and the smallest before it
            two = np.argpartition(d, 1, axis=1)
            best, second = two[:, 0], two[:, 1]
            cheb = np.maximum(np.abs(best // cols - second // cols),
                              np.abs(best % cols - second % cols))
            te_sum += int((cheb > 1).sum())
        else:
            best = np.zeros(len(xb), dtype=np.int64)
        # the distance itself from the difference, not the expansion: no cancellation error
        qe_sum += float(np.linalg.norm(xb - flat[best], axis=1).sum())
        won[best] = True
    n = max(len(x), 1)
    return {"quantization_error": qe_sum / n, "topographic_error": te_sum / n,
            "unit_utilization": float(won.mean())}
