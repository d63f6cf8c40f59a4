"""Cost of each metric at its default n, on one CPU thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/metrics_cost.py

writes benchmarks/results/metrics_cost.json. Real samples stand in for generated ones (the
cost does not depend on their quality). Each figure is the median of several repeats, in
milliseconds; the one-off costs (training the evaluator, building the real reference) are
listed apart from the per-report ones. The machine's load average is recorded too: the
figures are wall-clock times and other processes share the cores.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch

from gansweep.analysis import evaluator as E
from gansweep.analysis import metrics
from gansweep.analysis.metrics import scoring
from gansweep.analysis.metrics.classes import class_scores
from gansweep.analysis.metrics.distances import (
    K_PR,
    RealManifold,
    coverage,
    fid,
    gaussian,
    knn_sq_radii,
    prdc,
)
from gansweep.analysis.metrics.modes import mode_scores
from gansweep.trainers.data import load_dataset

OUT = ROOT / "benchmarks" / "results" / "metrics_cost.json"
COMMAND = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/metrics_cost.py"


def ms(fn: Callable[[], Any], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 2)


def mixture(name: str) -> dict[str, Any]:
    data = load_dataset(name)
    n = metrics.default_n(data)
    x = data.train[:n].astype(np.float64)
    real = data.held_out[:n].astype(np.float64)
    manifold = RealManifold.of(real)
    metrics.score(x, data, full=True)  # builds the cached reference
    return {
        "n": n,
        "one_off_ms": {"reference (real k-NN radii, mean, cov)": ms(lambda: (
            RealManifold.of(real), gaussian(real)), 3)},
        "per_report_ms": {
            "modes (modes_captured, hq_fraction, reverse_kl)":
                ms(lambda: mode_scores(x, data.modes, data.mode_std)),
            "fid": ms(lambda: fid(real, x)),
            "coverage alone (the cheap pass)": ms(lambda: coverage(manifold, x)),
            "generated k-NN radii (recall's own share)": ms(lambda: knn_sq_radii(x, (K_PR,))),
            "prdc (precision, recall, density, coverage, one pass)":
                ms(lambda: prdc(manifold, x)),
            "score(full=False)": ms(lambda: metrics.score(x, data)),
            "score(full=True)": ms(lambda: metrics.score(x, data, full=True)),
        },
    }


def images(name: str, image_size: int | None) -> dict[str, Any]:
    data = load_dataset(name, image_size=image_size)
    n = metrics.default_n(data)
    x = data.train[:n]
    t0 = time.perf_counter()
    ev = E.load_or_train(data)  # a fresh cache: this trains
    train_ms = round(1000 * (time.perf_counter() - t0), 1)
    E.clear_memory_cache()
    load_ms = ms(lambda: (E.clear_memory_cache(), E.load_or_train(data)), 3)
    ev = E.for_dataset(data)
    feats, pred = ev.embed(x)
    ref = scoring.reference(data, ev)
    return {
        "n": n, "image_shape": list(data.shape), "evaluator": ev.describe(),
        "evaluator_train_steps": ev.meta["train_steps"],
        "one_off_ms": {
            "evaluator training (cold cache)": train_ms,
            "evaluator load from the disk cache (once per trial process)": load_ms,
            "reference (held-out features, k-NN radii, mean, cov)":
                ms(lambda: scoring._REFS.clear() or scoring.reference(data, ev), 3),
        },
        "per_report_ms": {
            "evaluator forward (features + classes)": ms(lambda: ev.embed(x)),
            "fid": ms(lambda: fid(ref.manifold.features, feats)),
            "coverage alone (the cheap pass)": ms(lambda: coverage(ref.manifold, feats)),
            "generated k-NN radii (recall's own share)": ms(lambda: knn_sq_radii(feats, (K_PR,))),
            "prdc (precision, recall, density, coverage, one pass)":
                ms(lambda: prdc(ref.manifold, feats)),
            "classes (histogram, classes_covered, class_kl)":
                ms(lambda: class_scores(pred, ref.class_hist)),
            "score(full=False)": ms(lambda: metrics.score(x, data)),
            "score(full=True)": ms(lambda: metrics.score(x, data, full=True)),
        },
    }


def main() -> None:
    torch.set_num_threads(1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # one-off import, not the evaluator's
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GANSWEEP_CACHE"] = cache  # cold evaluator cache, never the user's
        results = {
            "ring8": mixture("ring8"),
            "grid25": mixture("grid25"),
            "digits (8 x 8, native)": images("digits", None),
            "digits (32 x 32, the DCGAN size)": images("digits", 32),
        }
    report = {
        "command": COMMAND,
        "what": "median wall-clock ms per metric at its default n (analysis.metrics."
                "default_n), one torch/BLAS thread, real samples standing in for generated",
        "machine": {"python": platform.python_version(), "torch": str(torch.__version__),
                    "numpy": np.__version__, "cpu_count": os.cpu_count(),
                    "platform": platform.platform(),
                    "loadavg_before": [round(v, 2) for v in load_before],
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
        "results": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
