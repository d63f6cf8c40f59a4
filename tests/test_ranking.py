"""How configurations rank over their seeds (analysis.sweeps.configurations_table)."""
from __future__ import annotations

import math

import pandas as pd

from gansweep.analysis.sweeps import configurations_table

SEEDS = {"count": 3, "top": 3, "statistic": "mean"}


def _run(cid: str, seed: int, state: str, value: float) -> dict:
    return {"config_key": cid, "key": f"{cid}-{seed}", "seed": seed, "state": state,
            "value": value, "objective": value, "stop_step": 100.0, "time_s": 1.0,
            "finished": float(seed), "hp_lr_g": 1e-3}


def test_an_interrupted_seed_does_not_hide_the_seeds_a_configuration_ended():
    # What an hour budget leaves: a's second seed was stopped at the deadline, unfinished.
    t = pd.DataFrame([_run("a", 0, "completed", 0.89), _run("a", 1, "unfinished", math.nan),
                      _run("b", 0, "completed", 0.85), _run("c", 0, "unfinished", math.nan),
                      _run("d", 0, "collapsed", 0.99)])
    c = configurations_table(t, SEEDS, "max").set_index("config_key")
    assert c.loc["a", "rank"] == 1 and c.loc["a", "seeds"] == 1 and c.loc["a", "value"] == 0.89
    assert c.loc["b", "rank"] == 2
    assert math.isnan(c.loc["c", "rank"]) and math.isnan(c.loc["d", "rank"])  # never returned


def test_all_seeds_rank_above_fewer():
    t = pd.DataFrame([_run("a", s, "completed", 0.8) for s in range(3)]
                     + [_run("b", 0, "completed", 0.95), _run("b", 1, "unfinished", math.nan)])
    c = configurations_table(t, SEEDS, "max").set_index("config_key")
    assert c.loc["a", "rank"] == 1 and bool(c.loc["a", "judged_on_all_seeds"])
    assert c.loc["b", "rank"] == 2 and not c.loc["b", "judged_on_all_seeds"]
