"""Distances between a real and a generated sample set in one feature space.

- `frechet_distance` / `fid`: Fréchet distance between Gaussians fitted to the two sets.
- `prdc`: precision and recall of k-NN manifolds (Kynkäänniemi et al. 2019, k = 3) and
  density and coverage (Naeem et al. 2020, k = 5).

All balls are closed (distance <= radius), as both papers define them. Distances are exact
(scipy's cdist on float64, never the |a|^2 + |b|^2 - 2ab expansion): the 2-D mixtures have
mode widths of 0.01 at unit radius, where the expansion's cancellation error is visible.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg
from scipy.spatial.distance import cdist

K_PR = 3  # precision / recall (Kynkäänniemi et al. 2019)
K_DC = 5  # density / coverage (Naeem et al. 2020)
CHUNK = 1024  # rows per distance block: bounds memory at CHUNK x N float64


def gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features; a 1-D feature gives a 1 x 1 matrix."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    sqrtm of a singular product (fewer samples than dimensions, dead features) can come back
    non-finite; then both covariances get `eps` on the diagonal, as pytorch-fid does. Rounding
    leaves a tiny imaginary part on a product of PSD matrices; a large one means the inputs
    were not covariances, which is a bug rather than a score.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products are expected and handled here
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(s1)) * eps
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > 1e-3 * max(1.0, float(np.abs(covmean).max())):
            raise ValueError(f"Fréchet distance: sqrtm has imaginary part {imag:.3g}")
        covmean = covmean.real
    fd = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)
    return float(max(fd, 0.0))  # rounding can leave -1e-12 for identical Gaussians


def frechet_to_samples(mu1: np.ndarray, sigma1: np.ndarray, x: np.ndarray) -> float:
    """The Fréchet distance from (mu1, sigma1) to the Gaussian fitted to (N, D) features `x`.

    With fewer samples than dimensions (Inception's 2048 features scored on a few hundred
    samples) the fitted covariance is B B^T with B = centred x^T / sqrt(N - 1), D x N, and
    tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of the N x N matrix
    B^T S1 B: the same number as sqrtm of the D x D product, without its singular-product
    instability, in a second instead of the ~20 s a 2048 x 2048 sqrtm takes on one core.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    if n - 1 >= d:
        return frechet_distance(mu1, sigma1, *gaussian(x))
    mu1 = np.atleast_1d(mu1).astype(np.float64)
    s1 = np.atleast_2d(sigma1).astype(np.float64)
    mu2 = x.mean(axis=0)
    b = (x - mu2).T / np.sqrt(n - 1)
    eig = np.linalg.eigvalsh(b.T @ s1 @ b)
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(s1) + np.sum(b * b) - 2.0 * np.sqrt(np.clip(eig, 0, None)).sum()
    return float(max(fd, 0.0))


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to (N, D) real and (M, D) generated features."""
    return frechet_distance(*gaussian(real), *gaussian(fake))


def knn_sq_radii(x: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Squared distance from each row of x to its k-th nearest other row, for each k in ks.

    Kept squared, straight from cdist: compared with cdist's own squared distances, a point
    exactly on a ball's edge (scoring a set against itself) stays inside; a sqrt and a square
    in between could round it out.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) <= max(ks):
        raise ValueError(f"{len(x)} samples: k-NN radii need more than k = {max(ks)}")
    out = {k: np.empty(len(x)) for k in ks}
    kth = sorted(ks)  # index k in the sorted row is the k-th neighbour: index 0 is the row itself
    for lo in range(0, len(x), CHUNK):
        part = np.partition(cdist(x[lo:lo + CHUNK], x, "sqeuclidean"), kth, axis=1)
        for k in ks:
            out[k][lo:lo + CHUNK] = part[:, k]
    return out


def knn_radii(x: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Distance from each row of x to its k-th nearest other row, for each k in ks."""
    return {k: np.sqrt(v) for k, v in knn_sq_radii(x, ks).items()}


@dataclass
class RealManifold:
    """The fixed real side of `prdc`: features and their squared k-NN radii (k = 3 and 5),
    computed once per dataset."""

    features: np.ndarray
    sq_radii: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, features: np.ndarray) -> RealManifold:
        features = np.asarray(features, dtype=np.float64)
        return cls(features, knn_sq_radii(features, (K_PR, K_DC)))


def coverage(real: RealManifold, fake: np.ndarray) -> float:
    """Fraction of real samples whose k = 5 ball holds at least one generated sample.

    The cheap one of the four (no generated-side radii): this is what runs at every report.
    """
    fake = np.asarray(fake, dtype=np.float64)
    covered = np.empty(len(real.features), dtype=bool)
    for lo in range(0, len(real.features), CHUNK):
        nearest = cdist(real.features[lo:lo + CHUNK], fake, "sqeuclidean").min(axis=1)
        covered[lo:lo + CHUNK] = nearest <= real.sq_radii[K_DC][lo:lo + CHUNK]
    return float(covered.mean())


def prdc(real: RealManifold, fake: np.ndarray) -> dict[str, float]:
    """precision, recall (k = 3) and density, coverage (k = 5) of generated `fake` features."""
    fake = np.asarray(fake, dtype=np.float64)
    fake_r3 = knn_sq_radii(fake, (K_PR,))[K_PR]
    r3, r5 = real.sq_radii[K_PR], real.sq_radii[K_DC]
    in_real = np.zeros(len(fake), dtype=bool)   # precision: fake inside some real 3-NN ball
    density_hits = 0                            # density: (fake, real 5-NN ball) pairs
    covered = np.zeros(len(real.features), dtype=bool)  # coverage: real ball holds a fake
    in_fake = np.zeros(len(real.features), dtype=bool)  # recall: real inside some fake ball
    for lo in range(0, len(real.features), CHUNK):
        d = cdist(real.features[lo:lo + CHUNK], fake, "sqeuclidean")  # (real chunk, fake)
        hit3 = d <= r3[lo:lo + CHUNK, None]
        hit5 = d <= r5[lo:lo + CHUNK, None]
        in_real |= hit3.any(axis=0)
        density_hits += int(hit5.sum())
        covered[lo:lo + CHUNK] = hit5.any(axis=1)
        in_fake[lo:lo + CHUNK] = (d <= fake_r3[None, :]).any(axis=1)
    return {
        "precision": float(in_real.mean()),
        "recall": float(in_fake.mean()),
        "density": float(density_hits / (K_DC * len(fake))),
        "coverage": float(covered.mean()),
    }
