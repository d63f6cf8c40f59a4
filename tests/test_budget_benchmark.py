"""benchmarks/budget.py, small: two arms on one seed, short runs, a budget of three runs."""
from __future__ import annotations

import numpy as np


def test_small_budget_benchmark(ray_local, tmp_path):
    from benchmarks.budget import auc, plot, run, summarise, targets

    res = run("ring8", [0], ["tpe", "tpe+collapse"], tmp_path, steps=100, runs=3,
              log=lambda *_: None)
    budget = res["budget_steps"]
    assert budget == 300
    for arm in ("tpe", "tpe+collapse"):
        c = res["per_seed"]["0"][arm]
        assert c["steps"] == sorted(c["steps"]) and c["steps"][-1] <= budget  # never over
        assert all(0.0 <= v <= 1.0 for v in c["fresh"])
        assert c["final"] == c["fresh"][-1] and 0.0 <= c["auc"] <= c["final"] + 1e-9
        assert c["auc"] == auc(c, budget)
    assert res["per_seed"]["0"]["tpe"]["steps"][-1] == budget  # no stopping: 3 full runs
    s = summarise(res)
    assert set(s) == {"tpe", "tpe+collapse"} and np.isfinite(s["tpe"]["final_mean"])
    assert set(targets(s)) == {"tpe+collapse"}
    assert plot(res, tmp_path / "curves.png").stat().st_size > 1000
