"""Mode counting for Gaussian mixtures with known means (`ring8`, `grid25`, `gauss1d`).

The VEEGAN (Srivastava et al. 2017) / PacGAN (Lin et al. 2018) rule: each generated sample is
assigned to its nearest mean; it is *high quality* when it lies within 3 standard deviations
of that mean; a mode is *captured* when it is the nearest mean of at least one high-quality
sample. For an isotropic 2-D Gaussian P(r < 3 sigma) = 1 - exp(-4.5) = 0.989, so real data
scores hq_fraction = 0.989 (0.997 in 1-D).

`reverse_kl` is PacGAN's KL(p_gen || p_real) over modes: p_gen is the histogram of the
high-quality samples over the K modes, p_real is uniform (the mixtures are equal-weight).
KL(p || u) = ln K - H(p), with 0 ln 0 = 0, so empty modes are safe: keeping K/2 modes evenly
gives ln 2, one mode gives ln K. With no high-quality sample at all there is no histogram; we
report ln K, the value of the worst histogram, so the number stays finite (a NaN would read as
divergence in the training loop) and monotone in quality.

`mixture_score` = hq_fraction x exp(-reverse_kl), in [0, 1]: the share of samples that are
sharp, times the effective number of modes they spread over (exp of the histogram's entropy)
divided by K. Neither count alone ranks runs as a researcher does: every good run ties at
modes_captured = K, and a run on one sharp mode has hq_fraction 0.99. Values at n = 2500
(tests/test_metrics.py), ring8 / grid25: real data 0.99 / 0.98; every mode present but
diffuse (std x 5) 0.16 / 0.17; half the modes (4 of 8, 13 of 25), sharp 0.49 / 0.51; one
mode, sharp 0.12 / 0.04; nothing near a mode 0.
"""
from __future__ import annotations

import numpy as np

HQ_STDS = 3.0


def nearest_modes(x: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each sample's nearest mean and the distance to it."""
    d = ((np.asarray(x, np.float64)[:, None, :] - np.asarray(means, np.float64)[None]) ** 2)
    d = d.sum(axis=-1)
    idx = d.argmin(axis=1)
    return idx, np.sqrt(d[np.arange(len(x)), idx])


def mode_histogram(x: np.ndarray, means: np.ndarray, std: float) -> tuple[np.ndarray, float]:
    """Counts of high-quality samples per mode, and the high-quality fraction of all samples."""
    idx, dist = nearest_modes(x, means)
    hq = dist <= HQ_STDS * std
    return np.bincount(idx[hq], minlength=len(means)), float(hq.mean())


def reverse_kl(counts: np.ndarray) -> float:
    """KL(counts / sum || uniform) in nats; ln K for an empty histogram (see module doc)."""
    k = len(counts)
    total = counts.sum()
    if total == 0:
        return float(np.log(k))
    p = counts[counts > 0] / total
    return float(max(np.log(k) + (p * np.log(p)).sum(), 0.0))


def mode_scores(x: np.ndarray, means: np.ndarray, std: float) -> dict[str, float]:
    """modes_captured, hq_fraction and reverse_kl of (N, D) samples against K known means."""
    counts, hq_fraction = mode_histogram(x, means, std)
    rkl = reverse_kl(counts)
    return {
        "modes_captured": float((counts > 0).sum()),
        "hq_fraction": hq_fraction,
        "reverse_kl": rkl,
        "mixture_score": float(hq_fraction * np.exp(-rkl)),
    }
