"""Class statistics of generated images, as the dataset's own evaluator classifies them.

`class_kl` is KL(p_gen || p_real), the same orientation as the mixtures' `reverse_kl`: it
punishes mass where the real data has little and, through the ln of the generated side,
dropped classes. p_real is the histogram of the held-out split's true labels. A class absent
from the held-out split (possible for small splits of many classes, e.g. Olivetti's 40
identities) would make the KL infinite for any sample of it; p_real is floored at half a
sample's weight and renormalised so the score stays finite.
"""
from __future__ import annotations

import numpy as np


def histogram(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Fractions of `labels` per class 0..n_classes-1."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)
    return counts / max(1, counts.sum())


def real_histogram(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The reference class histogram, floored so that every class has positive mass."""
    p = histogram(labels, n_classes)
    p = np.maximum(p, 0.5 / max(1, len(labels)))
    return p / p.sum()


def class_scores(pred: np.ndarray, p_real: np.ndarray) -> dict[str, float]:
    """classes_covered, class_kl and the per-class fractions class_hist_<i> of predictions."""
    p = histogram(pred, len(p_real))
    nz = p > 0
    kl = float(max((p[nz] * np.log(p[nz] / p_real[nz])).sum(), 0.0))
    out: dict[str, float] = {"classes_covered": float(nz.sum()), "class_kl": kl}
    out.update({f"class_hist_{i}": float(v) for i, v in enumerate(p)})
    return out
