"""benchmarks/quality.py's searches are specs `gansweep submit` accepts, as written."""
from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("name", ["ring8", "grid25", "digits-dcgan", "digits-wgan-gp"])
def test_every_search_is_a_valid_spec(name, tmp_path):
    from benchmarks.quality import SEARCHES, spec_for
    from gansweep.jobs.spec import parse_spec
    from gansweep.trainers.registry import get_trainer

    spec = parse_spec(spec_for(name, str(tmp_path)))
    known = set(get_trainer(spec.trainer).HPARAMS)
    assert set(SEARCHES[name]["space"]) | set(SEARCHES[name]["fixed"]) <= known
    assert spec.budget["hours"] <= 0.75 and spec.seeds["count"] == 3


def test_a_lever_is_a_spec_override_and_is_recorded(tmp_path):
    from benchmarks.quality import levers, spec_for
    from gansweep.jobs.spec import apply_sets, parse_spec

    spec = parse_spec(apply_sets(spec_for("ring8", str(tmp_path), hours=0.1667),
                                 ["budget.finish_leaders=true", f"warm_start={tmp_path}"]))
    got = levers(spec)
    assert got["finish_leaders"] is True and got["warm_start"]["sweeps"] == (str(tmp_path),)
    assert got["ema"] == 0.999 and got["seed_racing"]["count"] == 3
    assert spec.budget["hours"] == 0.1667


def test_a_given_configuration_is_trained_on_its_seeds_and_tabled(tmp_path):
    """--given: no search; `gansweep train` with those settings on each seed, judged and
    tabled like a search's fresh seeds."""
    from benchmarks.quality import given, save, table

    res = given("ring8", tmp_path, ["width=16", "depth=2", "batch_size=64"], 40, [11, 12])
    assert [r["seed"] for r in res["fresh_runs"]] == [11, 12]
    assert all(r["step"] == 40 for r in res["fresh_runs"]) and 0 <= res["hq_mean"] <= 1
    ran = json.loads((tmp_path / "fresh-12" / "config.json").read_text())["config"]
    assert (ran["width"], ran["depth"], ran["batch_size"]) == (16, 2, 64)
    save(tmp_path / "r.json", "probe", res)
    assert "| probe | given, 40 steps a run | - |" in table(tmp_path / "r.json")
