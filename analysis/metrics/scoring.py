"""`score`: every quality and mode-diversity number of generated samples, defined once.

Feature space: the data space for vector data (mixtures, user arrays); for images, the
dataset's own evaluator (analysis/evaluator.py). Reference: the first `default_n(data)` samples
of the fixed held-out split (already a seeded random permutation), so generated and real sets
have equal size, which density and coverage assume (Naeem et al. 2020).

`mode_diversity` (0..1, the number the collapse stopper watches):
- mixtures with known means: modes_captured / K, the ground truth a mixture offers;
- everything else: coverage (k = 5). Of the four k-NN scores it is the one that measures
  "how much of the real data has generated samples nearby" without being fooled: recall
  rises with a few outlying generated samples whose k-NN balls are huge, while coverage uses
  only the real side's balls (Naeem et al. 2020). It is bounded, needs no generated-side
  radii (cheap enough for every report), and its value for a perfect generator is known,
  1 - 2^-5 = 0.97 at equal n, while a generator kept to a fraction f of the modes scores
  about f.

Cheap scores (every report): mode_diversity, plus what comes free with it (modes_captured,
hq_fraction, reverse_kl for mixtures; coverage otherwise). `full=True` adds fid, precision,
recall, density, coverage and, for labelled images, the evaluator's class statistics.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from gansweep.analysis.metrics.classes import class_scores, real_histogram
from gansweep.analysis.metrics.distances import (
    K_DC,
    RealManifold,
    coverage,
    frechet_to_samples,
    gaussian,
    prdc,
)
from gansweep.analysis.metrics.modes import mode_scores
from gansweep.trainers.errors import ConfigError

N_VECTOR, N_IMAGE = 2500, 1000  # VEEGAN/PacGAN score 2500 samples; images: the held-out split
RANGE_TOL = 1e-3  # images are in [-1, 1]; float noise of a tanh output is fine


def default_n(data) -> int:
    """Samples scored per report: 2500 for vectors (VEEGAN/PacGAN), up to 1000 for images,
    never more than the held-out split holds (compare scores only at equal n)."""
    return min(len(data.held_out), N_VECTOR if data.kind == "vector" else N_IMAGE)


def is_mixture(data) -> bool:
    return data.kind == "vector" and data.modes is not None and bool(data.mode_std)


def validate_samples(samples: Any, data, check_range: bool = False) -> np.ndarray:
    """Samples as a float array of the dataset's per-sample shape, or a ConfigError saying why.

    Accepts (N,) for 1-D vector data and (N, H, W) for one-channel images.
    """
    try:
        x = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"samples are not a numeric array ({exc})") from exc
    want = tuple(data.shape)
    if x.ndim == len(want) and len(want) >= 1 and want[0] == 1 and data.kind == "image":
        x = x[:, None]  # N x H x W -> N x 1 x H x W
    elif x.ndim == 1 and want == (1,):
        x = x[:, None]
    if x.ndim < 1 or tuple(x.shape[1:]) != want:
        layout = "N x C x H x W (or N x H x W for one channel)" if data.kind == "image" else "N x D"
        hint = (" Score at another size with --image-size, or resize the samples."
                if data.kind == "image" else "")
        raise ConfigError(
            f"samples have shape {tuple(x.shape)}; dataset {data.name} expects {layout} with "
            f"one sample of shape {want}.{hint}"
        )
    if len(x) <= K_DC:
        raise ConfigError(f"{len(x)} samples: score at least {K_DC + 1} "
                          f"(the default for {data.name} is {default_n(data)})")
    bad = ~np.isfinite(x)
    if bad.any():
        raise ConfigError(f"samples hold {int(bad.sum())} NaN or infinite values (first at "
                          f"index {np.argwhere(bad)[0].tolist()}); drop or fix those samples")
    if check_range and data.kind == "image":
        lo, hi = float(x.min()), float(x.max())
        if lo < -1 - RANGE_TOL or hi > 1 + RANGE_TOL:
            raise ConfigError(
                f"image samples range over [{lo:.4g}, {hi:.4g}]; they must be in [-1, 1] "
                "(from [0, 1] use x * 2 - 1, from [0, 255] use x / 127.5 - 1)"
            )
    return x


@dataclass
class Reference:
    """The real side, fixed per dataset: features of the held-out samples and what derives
    from them. Built once per Dataset object and evaluator (see `reference`)."""

    evaluator: Any  # analysis.evaluator.Evaluator, or None for vector data
    manifold: RealManifold
    mean: np.ndarray
    cov: np.ndarray
    class_hist: np.ndarray | None

    def embed(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.evaluator is None:
            return x.reshape(len(x), -1), None
        return self.evaluator.embed(x.astype(np.float32))


_REFS: list[tuple[weakref.ref, Any, Reference]] = []
_MAX_REFS = 8


def reference(data, evaluator=None) -> Reference:
    """The cached real side for `data` (training scores every few steps against it)."""
    if data.kind == "image" and evaluator is None:
        from gansweep.analysis.evaluator import for_dataset

        evaluator = for_dataset(data)
    for ref, ev, built in _REFS:
        if ref() is data and ev is evaluator:
            return built
    real = data.held_out[:default_n(data)]
    if evaluator is None:
        feats = np.asarray(real, dtype=np.float64).reshape(len(real), -1)
    else:
        feats = evaluator.features(real)
    hist = None
    if evaluator is not None and evaluator.n_classes and data.held_out_labels is not None:
        hist = real_histogram(data.held_out_labels, evaluator.n_classes)
    built = Reference(evaluator, RealManifold.of(feats), *gaussian(feats), hist)
    _REFS[:] = [r for r in _REFS if r[0]() is not None][-(_MAX_REFS - 1):]
    _REFS.append((weakref.ref(data), evaluator, built))
    return built


CHEAP_MIXTURE = frozenset({"mode_diversity", "modes_captured", "hq_fraction", "reverse_kl",
                           "mixture_score"})
CHEAP_OTHER = frozenset({"mode_diversity", "coverage"})


def cheap_metrics(data) -> frozenset[str]:
    """What `score(..., full=False)` returns for `data`: a caller that needs more scores fully
    at once rather than twice."""
    return CHEAP_MIXTURE if is_mixture(data) else CHEAP_OTHER


def score(samples: np.ndarray, data, full: bool = False, evaluator=None) -> dict[str, float]:
    """Metrics of generated `samples` against `data.held_out`; the costly ones only when `full`.

    `evaluator` overrides the dataset's own (images); by default it is loaded from the cache,
    or trained once, on the first call for a dataset.
    """
    x = validate_samples(samples, data)
    out: dict[str, float] = {}
    mixture = is_mixture(data)
    if mixture:
        modes = mode_scores(x, data.modes, data.mode_std)
        out["mode_diversity"] = modes["modes_captured"] / len(data.modes)
        out.update(modes)
        if not full:
            return out
    ref = reference(data, evaluator)
    feats, pred = ref.embed(x)
    if full:
        out["fid"] = frechet_to_samples(ref.mean, ref.cov, feats)
        out.update(prdc(ref.manifold, feats))
        if pred is not None and ref.class_hist is not None:
            out.update(class_scores(pred, ref.class_hist))
    else:
        out["coverage"] = coverage(ref.manifold, feats)
    if not mixture:
        out = {"mode_diversity": out["coverage"], **out}
    return out
