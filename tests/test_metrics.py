"""The measurements: exactness checks on data with known answers, the evaluator cache, and the
wiring into the training loop's reports."""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import pytest
import torch
from minisom import MiniSom

from gansweep.analysis import evaluator as E
from gansweep.analysis import metrics
from gansweep.analysis.metrics.classes import class_scores, real_histogram
from gansweep.analysis.metrics.distances import RealManifold, fid, frechet_distance, knn_radii, prdc
from gansweep.analysis.metrics.modes import reverse_kl
from gansweep.trainers.base import Trainer
from gansweep.trainers.data import Dataset, load_dataset
from gansweep.trainers.errors import ConfigError

torch.set_num_threads(1)
LN2 = float(np.log(2))


@pytest.fixture(scope="module")
def ring8() -> Dataset:
    return load_dataset("ring8")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def real(data: Dataset, n: int = 2500, modes: list[int] | None = None) -> np.ndarray:
    """Real samples from the training split (independent of the held-out reference)."""
    keep = np.ones(len(data.train), bool) if modes is None else np.isin(data.train_labels, modes)
    return data.train[keep][:n]


# ---- mixtures ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,k", [("ring8", 8), ("grid25", 25), ("gauss1d", 1)])
def test_real_mixture_keeps_every_mode(name: str, k: int) -> None:
    data = load_dataset(name)
    s = metrics.score(real(data), data, full=True)
    assert s["modes_captured"] == k and s["mode_diversity"] == 1.0
    hq = 1 - np.exp(-4.5) if data.shape == (2,) else 0.9973  # P(r < 3 sd): 2-D, 1-D
    assert s["hq_fraction"] == pytest.approx(hq, abs=0.01)
    assert s["reverse_kl"] < 0.02
    assert s["precision"] > 0.93 and s["recall"] > 0.93 and s["coverage"] > 0.93


def test_half_the_modes_dropped_evenly(ring8: Dataset) -> None:
    s = metrics.score(real(ring8, modes=[0, 2, 4, 6]), ring8, full=True)
    assert s["modes_captured"] == 4 and s["mode_diversity"] == 0.5
    assert s["reverse_kl"] == pytest.approx(LN2, abs=0.02)
    assert s["coverage"] == pytest.approx(0.5, abs=0.04)
    assert s["recall"] == pytest.approx(0.5, abs=0.04)
    assert s["precision"] > 0.93  # everything generated is still real-looking


def test_one_mode_only(ring8: Dataset) -> None:
    s = metrics.score(real(ring8, modes=[3]), ring8)
    assert s["modes_captured"] == 1 and s["mode_diversity"] == 1 / 8
    assert s["reverse_kl"] == pytest.approx(np.log(8), abs=1e-9)


def test_far_samples_capture_nothing(ring8: Dataset) -> None:
    s = metrics.score(np.full((2500, 2), 5.0), ring8, full=True)
    assert s["modes_captured"] == 0 and s["hq_fraction"] == 0 and s["mode_diversity"] == 0
    assert s["reverse_kl"] == pytest.approx(np.log(8))  # finite: NaN would read as diverged
    assert s["coverage"] == 0 and s["precision"] == 0 and np.isfinite(s["fid"])


def test_reverse_kl_definition() -> None:
    assert reverse_kl(np.array([5, 5, 5, 5])) == 0.0
    assert reverse_kl(np.array([3, 0, 3, 0])) == pytest.approx(LN2)
    assert reverse_kl(np.array([0, 0, 9, 0])) == pytest.approx(np.log(4))
    assert reverse_kl(np.zeros(4, int)) == pytest.approx(np.log(4))


def test_mixture_scoring_is_cheap(ring8: Dataset) -> None:
    x = real(ring8)
    metrics.score(x, ring8, full=True)  # builds the cached reference once
    times = []
    for full in (False, True):
        t0 = time.perf_counter()
        metrics.score(x, ring8, full=full)
        times.append(time.perf_counter() - t0)
    assert times[0] < 0.1 and times[1] < 1.0, times  # 2 shared cores; figures in benchmarks/


# ---- distances -----------------------------------------------------------------------------

def test_fid_with_equal_covariances_is_squared_mean_distance() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    cov = a @ a.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    assert frechet_distance(mu1, cov, mu2, cov) == pytest.approx(((mu1 - mu2) ** 2).sum(),
                                                                 rel=1e-9)
    x = rng.standard_normal((500, 6)) @ a
    shift = np.arange(6.0) / 3
    assert fid(x, x + shift) == pytest.approx((shift ** 2).sum(), rel=1e-7)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-9)


def test_fid_of_singular_and_one_dimensional_features() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 8))
    assert np.isfinite(fid(x, np.repeat(x[:1], 50, 0)))  # zero covariance on one side
    assert np.isfinite(fid(x, rng.standard_normal((5, 8))))  # fewer samples than dimensions
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([1.0]),
                            np.array([[1.0]])) == pytest.approx(1.0 + 1.0)


def test_identical_distributions_cover_one_minus_two_to_minus_k() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 2000, 4))
    s = prdc(RealManifold.of(a), b)
    assert s["coverage"] == pytest.approx(1 - 2 ** -5, abs=0.015)  # 0.97 at k = 5, N = M
    assert s["density"] == pytest.approx(1.0, abs=0.08)
    assert s["precision"] > 0.85 and s["recall"] > 0.85


def test_prdc_matches_the_papers_definitions() -> None:
    """Against a direct transcription of the four formulas on a small set."""
    rng = np.random.default_rng(3)
    r, f = rng.standard_normal((40, 3)), rng.standard_normal((30, 3)) * 1.3 + 0.4
    d_rr = np.linalg.norm(r[:, None] - r[None], axis=-1)
    d_ff = np.linalg.norm(f[:, None] - f[None], axis=-1)
    d_rf = np.linalg.norm(r[:, None] - f[None], axis=-1)
    r3, r5 = np.sort(d_rr, 1)[:, 3], np.sort(d_rr, 1)[:, 5]  # column 0 is the point itself
    f3 = np.sort(d_ff, 1)[:, 3]
    want = {
        "precision": np.mean([(d_rf[:, j] <= r3).any() for j in range(len(f))]),
        "recall": np.mean([(d_rf[i] <= f3).any() for i in range(len(r))]),
        "density": (d_rf <= r5[:, None]).sum() / (5 * len(f)),
        "coverage": np.mean(d_rf.min(axis=1) <= r5),
    }
    got = prdc(RealManifold.of(r), f)
    assert got == pytest.approx(want)
    assert np.allclose(knn_radii(r, (3, 5))[5], r5)
    # a set against itself: every ball holds its centre and exactly k neighbours (closed balls)
    same = prdc(RealManifold.of(r), r.copy())
    assert same == {"precision": 1.0, "recall": 1.0, "density": 6 / 5, "coverage": 1.0}


# ---- SOM -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rows,cols", [(6, 5), (1, 7)])
def test_som_scores_equal_minisom(rows: int, cols: int) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 3))
    som = MiniSom(rows, cols, 3, random_seed=0)
    som.train(x, 200, random_order=True)
    ours = metrics.som_scores(som.get_weights(), x)
    assert ours["quantization_error"] == pytest.approx(som.quantization_error(x), rel=1e-9)
    assert ours["topographic_error"] == pytest.approx(som.topographic_error(x), abs=1e-12)
    winners = {som.winner(v) for v in x}
    assert ours["unit_utilization"] == pytest.approx(len(winners) / (rows * cols))
    assert set(ours) == {"quantization_error", "topographic_error", "unit_utilization"}


# ---- validation ----------------------------------------------------------------------------

def test_bad_samples_say_what_to_change(ring8: Dataset, digits: Dataset) -> None:
    with pytest.raises(ConfigError, match="expects N x D"):
        metrics.score(np.zeros((100, 3)), ring8)
    with pytest.raises(ConfigError, match="NaN"):
        metrics.score(np.full((100, 2), np.nan), ring8)
    with pytest.raises(ConfigError, match="at least"):
        metrics.score(np.zeros((3, 2)), ring8)
    with pytest.raises(ConfigError, match=r"\(1, 8, 8\)"):
        metrics.score(np.zeros((50, 1, 16, 16)), digits)
    with pytest.raises(ConfigError, match=r"\[-1, 1\]"):
        metrics.validate_samples(np.full((50, 8, 8), 255.0), digits, check_range=True)
    assert metrics.validate_samples(np.zeros((50, 8, 8)), digits).shape == (50, 1, 8, 8)


# ---- classes -------------------------------------------------------------------------------

def test_class_scores() -> None:
    p_real = real_histogram(np.repeat(np.arange(4), 25), 4)
    s = class_scores(np.array([0, 1] * 50), p_real)
    assert s["classes_covered"] == 2 and s["class_kl"] == pytest.approx(LN2)
    assert [s[f"class_hist_{i}"] for i in range(4)] == [0.5, 0.5, 0.0, 0.0]
    # a class the held-out split lacks still gives a finite KL
    lacking = real_histogram(np.array([0, 0, 1, 1]), 3)
    assert np.isfinite(class_scores(np.array([2, 2]), lacking)["class_kl"])


# ---- images: the evaluator -----------------------------------------------------------------

def test_evaluator_is_trained_once_then_loaded(digits: Dataset, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path))
    E.clear_memory_cache()
    before = E.TRAIN_COUNT
    rng_state = torch.get_rng_state()
    first = E.for_dataset(digits)
    assert E.TRAIN_COUNT == before + 1
    assert torch.equal(torch.get_rng_state(), rng_state)  # trainers' global RNG untouched
    path = E.cache_path(digits)
    mtime = os.stat(path).st_mtime_ns
    assert E.for_dataset(digits) is first  # same process: memoised, no reload

    E.clear_memory_cache()  # as a new Ray trial process would start
    second = E.for_dataset(digits)
    assert second is not first and E.TRAIN_COUNT == before + 1
    assert os.stat(path).st_mtime_ns == mtime
    x = digits.held_out[:50]
    assert np.array_equal(first.features(x), second.features(x))
    assert first.meta["held_out_accuracy"] > 0.9
    assert [p.name for p in tmp_path.joinpath("evaluators").iterdir()
            if p.suffix == ".pt"] == [path.name]  # no temporary files left behind
    E.clear_memory_cache()


def test_digits_real_scores_better_than_noise_and_one_image(digits: Dataset) -> None:
    n = metrics.default_n(digits)
    scores = {
        "real": metrics.score(digits.train[:n], digits, full=True),
        "noise": metrics.score(np.random.default_rng(0).uniform(-1, 1, (n, 1, 8, 8)), digits,
                               full=True),
        "one": metrics.score(np.repeat(digits.train[:1], n, 0), digits, full=True),
    }
    real_s = scores["real"]
    assert real_s["classes_covered"] == 10 and real_s["class_kl"] < 0.05
    assert real_s["coverage"] > 0.9 and real_s["mode_diversity"] == real_s["coverage"]
    for bad in ("noise", "one"):
        assert scores[bad]["fid"] > 10 * real_s["fid"]
        assert scores[bad]["coverage"] < 0.1
    assert scores["one"]["classes_covered"] == 1
    assert scores["one"]["class_kl"] > 1.5
    cheap = metrics.score(digits.train[:n], digits)
    assert set(cheap) == {"mode_diversity", "coverage"}
    assert cheap["coverage"] == real_s["coverage"]


def test_unlabelled_images_use_an_autoencoder(digits: Dataset) -> None:
    data = dataclasses.replace(digits, name="digits-unlabelled", train_labels=None,
                               held_out_labels=None)
    ev = E.for_dataset(data)
    assert ev.kind == "autoencoder" and ev.n_classes is None
    n = metrics.default_n(data)
    good = metrics.score(digits.train[:n], data, full=True)
    noise = metrics.score(np.random.default_rng(0).uniform(-1, 1, (n, 1, 8, 8)), data, full=True)
    assert "classes_covered" not in good
    assert good["coverage"] > 0.8 and noise["coverage"] < 0.1 and good["fid"] < noise["fid"]


# ---- wiring: the training loop's reports ---------------------------------------------------

class ReplayTrainer(Trainer):
    """A stand-in family whose generator samples real data: the slice of the trainer contract
    the training loop uses (train, sample; OUTPUT and output() from base.Trainer)."""

    def __init__(self, data: Dataset, name: str = "replay"):
        self.name, self.data, self.step = name, data, 0
        self.scored_batch = None

    def train(self, steps: int) -> dict[str, float]:
        self.step += steps
        return {"loss_g": 1.0, "loss_d": 1.0}

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        return torch.from_numpy(self.data.train[:n])


def test_reports_carry_mode_diversity_and_full_scores_at_the_interval(ring8: Dataset) -> None:
    from gansweep.jobs.loop import train_loop

    rows = train_loop(ReplayTrainer(ring8), steps=6, report_every=1, score_every=3,
                      history=[], on_report=lambda row: None)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(r["mode_diversity"] == 1.0 and "loss_g" in r for r in rows)
    full = [r["step"] for r in rows if "fid" in r]
    assert full == [3, 6]


def test_final_samples_reuse_the_last_reports_batch(ring8: Dataset, tmp_path) -> None:
    """One generator pass per report; writing the final samples draws nothing more."""
    from gansweep.jobs.loop import train_loop
    from gansweep.jobs.train_cmd import write_output

    trainer, calls = ReplayTrainer(ring8), []
    draw = trainer.sample
    trainer.sample = lambda n, seed=0: calls.append(trainer.step) or draw(n, seed)
    train_loop(trainer, steps=2, report_every=1, score_every=None, history=[],
               on_report=lambda row: None)
    path = write_output(trainer, tmp_path)
    assert calls == [1, 2]
    np.testing.assert_array_equal(np.load(path), draw(metrics.default_n(ring8)).numpy())


def test_image_reports_load_the_evaluator_once_per_trainer(digits: Dataset, monkeypatch) -> None:
    from gansweep.jobs.loop import train_loop

    E.clear_memory_cache()
    calls = []
    real_load = E.load_or_train
    monkeypatch.setattr(E, "load_or_train",
                        lambda data, *where: calls.append(1) or real_load(data, *where))
    rows = train_loop(ReplayTrainer(digits), steps=3, report_every=1, score_every=None,
                      history=[], on_report=lambda row: None)
    assert len(calls) == 1
    assert all(r["mode_diversity"] > 0.9 for r in rows) and "fid" in rows[-1]


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_score_ranks_sharp_and_complete_above_either_alone(name: str) -> None:
    """The one scalar for mixtures, at the values its documentation gives."""
    from gansweep.analysis.metrics.modes import mode_scores

    data = load_dataset(name)
    m, s, n = data.modes, data.mode_std, 2500
    rng = np.random.default_rng(0)
    k = len(m)
    cases = {
        "real": data.held_out[:n],
        "diffuse": m[rng.integers(k, size=n)] + 5 * s * rng.standard_normal((n, 2)),
        "half": m[rng.choice(np.arange(0, k, 2), size=n)] + s * rng.standard_normal((n, 2)),
        "one": m[np.zeros(n, int)] + s * rng.standard_normal((n, 2)),
    }
    got = {c: mode_scores(x, m, s)["mixture_score"] for c, x in cases.items()}
    want = {"ring8": {"real": 0.99, "diffuse": 0.16, "half": 0.49, "one": 0.12},
            "grid25": {"real": 0.98, "diffuse": 0.17, "half": 0.51, "one": 0.04}}[name]
    assert got == pytest.approx(want, abs=0.015)
    assert got["real"] > got["half"] > got["diffuse"] > got["one"]
    # the two it combines cannot rank these alone
    assert mode_scores(cases["one"], m, s)["hq_fraction"] > 0.98
    assert mode_scores(cases["diffuse"], m, s)["modes_captured"] == k


def test_frechet_distance_to_fewer_samples_than_dimensions_matches_sqrtm():
    """The N x N eigenvalue route (fewer samples than dimensions, as Inception's 2048 features
    on a few hundred samples) is the same number as sqrtm of the D x D product."""
    from scipy import linalg

    from gansweep.analysis.metrics.distances import frechet_to_samples, gaussian

    rng = np.random.default_rng(3)
    real = rng.normal(size=(400, 60)) @ rng.normal(size=(60, 60)) / 8
    fake = rng.normal(0.3, 1.2, size=(25, 60))
    mu1, s1 = gaussian(real)
    mu2, s2 = gaussian(fake)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    got = frechet_to_samples(mu1, s1, fake)
    assert got == pytest.approx(expected, rel=1e-6)
    assert frechet_to_samples(mu1, s1, real) == pytest.approx(0.0, abs=1e-9)  # n > d: as before
