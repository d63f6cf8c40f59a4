"""benchmarks/budget.py, small: two arms on one seed, short runs, a budget of three runs."""
from __future__ import annotations

import json

import numpy as np
import pytest


def killed_mid_sweep(work) -> None:
    """The benchmark in a process of its own, SIGKILLed while the tpe arm's sweep has a run
    ended and another with a checkpoint; its sweep stays in `work`."""
    from tests.faults import Driver, results, running, wait_for

    code = ("from benchmarks.budget import run; run('ring8', [0], ['tpe'], "
            f"__import__('pathlib').Path({str(work)!r}), steps=100, runs=3)")
    driver = Driver(code=code, log=work / "killed.log")
    sweep = work / "ring8-tpe-0"
    try:
        # mid-way with room to spare: a 100-step run ends within a second of its last report
        wait_for(lambda: results(sweep) and any(s <= 50 for s in running(sweep).values()),
                 "a run ended, one mid-way", timeout=180, driver=driver, poll=0.02)
    finally:
        driver.kill(group=True)


def test_small_budget_benchmark(ray_local, tmp_path):
    """Killed mid-way, then run again in the same work directory (`--work`): the killed arm's
    sweep is resumed with nothing lost or trained twice, then everything checked as if it had
    run straight through; a third run only rescores."""
    from benchmarks.budget import (
        auc,
        plot,
        retrain,
        retrain_one,
        run,
        spec_for,
        summarise,
        table,
        targets,
    )
    from gansweep.analysis.records import SweepMeta
    from tests.faults import results, store_steps

    killed_mid_sweep(tmp_path)
    res = run("ring8", [0], ["tpe", "tpe+collapse"], tmp_path, steps=100, runs=3,
              log=lambda *_: None)
    assert res["per_seed"]["0"]["tpe"]["resumed"]
    assert "resumed" not in res["per_seed"]["0"]["tpe+collapse"]
    every = spec_for("ring8", "tpe", 0, str(tmp_path), steps=100)["report_every"]
    for steps in store_steps(tmp_path / "ring8-tpe-0").values():  # whole, nothing twice
        assert steps == list(range(every, 100, every)) + [100], steps
    assert any(r["resumed_from_step"] > 0 for r in results(tmp_path / "ring8-tpe-0").values())
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
    # the incumbents' configurations are kept, and trained again on fresh training seeds
    tpe = res["per_seed"]["0"]["tpe"]
    assert tpe["incumbent_config"]["lr_g"] > 0 and tpe["incumbent_config"]["width"] == 64
    # on the sweep's own training seed it is the incumbent again, bit for bit
    assert retrain_one(("ring8", tpe["incumbent_config"], 0, 100)) == tpe["final"]
    retrain(res, 2, workers=1, log=lambda *_: None)
    assert len(tpe["retrained"]) == 2 and all(0.0 <= v <= 1.0 for v in tpe["retrained"])
    assert res["summary"]["tpe"]["retrained_mean"] == np.mean(tpe["retrained"])
    assert "trained again" in table(res)
    # and again: each arm's sweep is resumed, with nothing left: the same curves, no run
    # trained again
    stored = sorted(p.read_text() for p in tmp_path.glob("*/trials/*/result.json"))
    again = run("ring8", [0], ["tpe", "tpe+collapse"], tmp_path, steps=100, runs=3,
                log=lambda *_: None)
    for arm in ("tpe", "tpe+collapse"):
        c, before = again["per_seed"]["0"][arm], res["per_seed"]["0"][arm]
        assert c["resumed"]
        assert (c["steps"], c["fresh"]) == (before["steps"], before["fresh"])
        meta = json.loads((tmp_path / f"ring8-{arm}-0" / "sweep.json").read_text())
        # its drivers' time
        assert c["wall_s"] == round(SweepMeta.from_json(meta).spent_seconds(), 1) > 0
    assert sorted(p.read_text() for p in tmp_path.glob("*/trials/*/result.json")) == stored
    with pytest.raises(SystemExit, match="made with other settings"):
        run("ring8", [0], ["tpe"], tmp_path, steps=60, runs=3, log=lambda *_: None)


def test_every_arm_is_a_valid_spec_with_its_asha_grace(tmp_path):
    from benchmarks.budget import ARMS, CANDIDATES, DATASETS, spec_for
    from gansweep.jobs.spec import parse_spec

    for dataset, d in DATASETS.items():
        for arm in ARMS:
            for grace in d["asha_graces"]:
                spec = spec_for(dataset, arm, 101, str(tmp_path), asha_grace=grace)
                parse_spec(spec)
                asha = spec["early_stop"].get("asha")
                if asha:
                    assert asha["grace_steps"] == round(d["steps"] * grace)
                collapse = spec["early_stop"].get("collapse")
                if collapse:  # a quarter of a run unless the candidate says otherwise
                    assert collapse["grace_steps"] == d["steps"] // 4
    patient = spec_for("grid25", "tpe+collapse", 101, str(tmp_path),
                       collapse=CANDIDATES["patient"])
    assert parse_spec(patient).early_stop["collapse"]["grace_steps"] == 5000


def _fake(seed: int, grace: float | None) -> dict:
    curve = {"steps": [100.0, 300.0], "fresh": [0.2, 0.5], "final": 0.5, "auc": 0.3,
             "reach_tpe_final": 300.0, "configurations": 2, "counts": {"completed": 2},
             "wall_s": 1.0}
    res = {"dataset": "grid25", "budget_steps": 300, "arms": ["tpe"], "seeds": [seed],
           "per_seed": {str(seed): {"tpe": curve}}, "partial": False, "wall_s": 1.0,
           "collapse": {"threshold": 0.25, "patience": 3}}
    if grace is not None:
        res["asha"] = {"reduction_factor": 3, "grace": grace}
    return {"grid25": res}


def test_merge_adds_seeds_and_refuses_another_asha_grace(tmp_path):
    from benchmarks.budget import merge

    into, other, odd = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    into.write_text(json.dumps(_fake(101, 0.3)))
    other.write_text(json.dumps(_fake(102, 0.3)))
    odd.write_text(json.dumps(_fake(103, None)))  # an entry from before the choice: a tenth
    merge(into, other, "grid25")
    merged = json.loads(into.read_text())["grid25"]
    assert merged["seeds"] == [101, 102] and merged["summary"]["tpe"]["final_mean"] == 0.5
    assert merged["wall_s"] == 2.0
    merge(into, other, "grid25")  # again (a continuation merged as it goes): nothing added
    assert json.loads(into.read_text())["grid25"]["wall_s"] == 2.0
    with pytest.raises(SystemExit, match="ASHA grace"):
        merge(into, odd, "grid25")


def test_another_collapse_setting_is_added_beside_and_judged_against_the_same_tpe(tmp_path):

    from benchmarks.budget import CANDIDATES, add_arms, spec_for
    from gansweep.jobs.spec import parse_spec

    spec = parse_spec(spec_for("ring8", "tpe+collapse", 100, str(tmp_path),
                               collapse=CANDIDATES["trend"]))
    assert spec.early_stop["collapse"]["trend"] is True
    into, other = tmp_path / "a.json", tmp_path / "b.json"
    base = _fake(101, 0.3)
    base["grid25"]["run_steps"] = 100
    into.write_text(json.dumps(base))
    trend = _fake(101, 0.3)["grid25"]
    trend.update(run_steps=100, arms=["tpe+collapse"], collapse={**CANDIDATES["trend"]})
    late = {"steps": [100.0, 200.0], "fresh": [0.1, 0.49], "final": 0.49, "auc": 0.2,
            "configurations": 3, "counts": {"completed": 1, "collapsed": 2}, "wall_s": 1.0}
    trend["per_seed"] = {"101": {"tpe+collapse": late}, "103": {"tpe+collapse": late}}
    other.write_text(json.dumps({"grid25": trend}))
    add_arms(into, other, "grid25")
    got = json.loads(into.read_text())["grid25"]
    assert got["arms"] == ["tpe", "tpe+collapse [trend]"]
    row = got["per_seed"]["101"]["tpe+collapse [trend]"]
    assert row["reach_tpe_final"] == 200.0  # 0.49 is within 0.02 of TPE's 0.5
    assert "103" not in got["per_seed"] and got["added"]["trend"]["seeds"] == [101]
    assert got["summary"]["tpe+collapse [trend]"]["final_mean"] == 0.49
    assert "tpe+collapse [trend]" in got["targets"]
    # the same setting on development seeds joins the choice's record, not the held-out table
    base["grid25"]["dev"] = {"candidates": {"cautious": CANDIDATES["cautious"]},
                             "auc_mean": {"cautious": 0.3}, "per_candidate": {},
                             "chosen": "cautious"}
    into.write_text(json.dumps(base))
    late["reach_tpe_final"] = None  # as run() writes it without a TPE arm
    trend["per_seed"] = {"0": {"tpe+collapse": late}, "1": {"tpe+collapse": late}}
    trend["budget_steps"] = 300
    other.write_text(json.dumps({"grid25": trend}))
    add_arms(into, other, "grid25")
    got = json.loads(into.read_text())["grid25"]
    assert got["arms"] == ["tpe"] and got["dev"]["chosen"] == "cautious"
    assert got["dev"]["auc_mean"] == {"cautious": 0.3, "trend": 0.2}


def test_fixed_settings_beside_a_development_choice_are_refused_before_any_run(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    for flag in (["--collapse", "trend"], ["--asha-grace", "0.3"]):
        out = subprocess.run([sys.executable, "benchmarks/budget.py", "--dataset", "ring8",
                              *flag, "--out", str(tmp_path / "x.json")], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and "give them with --dev ''" in out.stderr, out.stderr
    assert not (tmp_path / "x.json").exists()


def test_grid25_chooses_ashas_grace_on_its_development_seeds(ray_local, tmp_path):
    """grid25 keeps ring8's collapse setting and runs the tpe+asha arm once per candidate
    grace on the development seed, returning the one with the larger area (short runs here)."""
    from benchmarks.budget import DATASETS, choose

    name, grace, record = choose("grid25", [0], tmp_path, log=lambda *_: None, steps=60,
                                 runs=2)
    assert name == "cautious" and "per_candidate" not in record  # nothing chosen there
    asha = record["asha"]
    assert asha["candidates"] == DATASETS["grid25"]["asha_graces"] and grace == asha["chosen"]
    aucs = asha["auc_mean"]
    assert set(aucs) == {"0.1", "0.3"} and aucs[str(grace)] == max(aucs.values())
    for res in asha["per_candidate"].values():
        assert res["budget_steps"] == 120 and res["arms"] == ["tpe+asha"]


def test_paired_comparison_counts_seeds_and_brackets_the_mean():
    from benchmarks.budget import paired

    finals = {"100": (0.5, 0.4), "101": (0.3, 0.3), "102": (0.2, 0.6), "103": (0.9, 0.1)}
    out = {"per_seed": {s: {"arm": {"final": a}, "tpe": {"final": b}}
                        for s, (a, b) in finals.items()}}
    v = paired(out, "arm")["vs_tpe"]
    assert (v["wins"], v["ties"], v["losses"]) == (2, 1, 1)
    assert abs(v["mean_diff"] - 0.125) < 1e-12 and v["ci90"][0] < 0.125 < v["ci90"][1]
    assert paired(out, "tpe") == {}


def test_step_cost_writes_a_row_per_batch_size(tmp_path):
    """benchmarks/step_cost.py, two steps a case (what it measures is in the README)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "cost.json"
    proc = subprocess.run([sys.executable, "benchmarks/step_cost.py", "--steps", "2",
                           "--rounds", "2", "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["batch_size"] for r in rows] == [32, 64, 128, 256]
    assert all(r["ms_per_step"] > 0 and r["ms_per_step_mbd"] > 0 for r in rows)
    assert "| 256 |" in proc.stdout


def test_the_median_budget_to_reach_gets_an_interval_over_the_seeds():
    """Seeds that never reached count as inf; the interval's ends are resampled medians."""
    import math

    from benchmarks.budget import median_interval

    assert median_interval([0.4]) is None
    lo, hi = median_interval([0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    assert 0.2 <= lo < 0.45 < hi <= 0.7
    lo, hi = median_interval([0.1, 0.2, math.inf, math.inf, math.inf])
    assert lo < 1 and math.isinf(hi)  # a median that may be "never" says so
    assert median_interval([0.3] * 5) == [0.3, 0.3]
