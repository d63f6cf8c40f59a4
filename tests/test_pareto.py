"""Two objectives, quality against cost (issue 30, part 3): the Pareto front in
analysis/ranking.py on hand-made points, racing by front, and one tiny real two-objective sweep
on the shared local Ray read through status, the report, `train --from --pick` and resume;
bad input refused before anything is made."""
from __future__ import annotations

import json
import math

import optuna
import pandas as pd
import pytest

import gansweep
from gansweep.analysis import layout, ranking
from gansweep.analysis.sweeps import configurations_table, load_sweep
from gansweep.jobs.cli import main
from gansweep.jobs.racing import Racing
from gansweep.jobs.spec import parse_spec
from gansweep.trainers.errors import ConfigError
from tests.conftest import tiny_spec

MODES = ("min", "max")  # e.g. fid (lower is better) against steps_per_second (higher)


# ---- pure: fronts, the knee, best:METRIC ------------------------------------------------------

def test_fronts_with_mixed_directions():
    pts = [(1.0, 1.0), (2.0, 3.0), (3.0, 2.0), (0.5, 0.5), (4.0, 4.0), (5.0, 1.0)]
    # (2, 3) beats (3, 2) in both (2 < 3 and 3 > 2); (3, 2) beats (5, 1)
    assert ranking.fronts(pts, MODES) == [0, 0, 1, 0, 0, 2]
    assert ranking.dominates((2, 3), (3, 2), MODES)
    assert not ranking.dominates((1, 1), (2, 3), MODES)
    assert not ranking.dominates((1, 1), (1, 1), MODES)  # equal points: neither wins
    # the same points in the other directions: front membership follows the directions
    assert ranking.fronts(pts, ("max", "min"))[5] == 0
    # a value that is not finite loses to every finite one
    assert ranking.fronts([(3.0, math.nan), (2.0, 0.1)], MODES) == [1, 0]


def test_knee_and_best_metric_picks_and_the_order_they_make():
    pts = [(1.0, 1.0), (2.0, 3.0), (3.0, 2.0), (0.5, 0.5), (4.0, 4.0)]
    metrics = ("fid", "steps_per_second")
    # scaled to [0, 1] over the front {0.5, 1, 2, 4} x {0.5, 1, 3, 4}: (2, 3) is nearest
    # the ideal (0.5, 4)
    assert ranking.pick(pts, MODES, metrics, "knee") == 1
    assert ranking.pick(pts, MODES, metrics, "best:fid") == 3
    assert ranking.pick(pts, MODES, metrics, "best:steps_per_second") == 4
    order = ranking.pareto_order(pts, MODES, list("abcde"))
    assert order[0] == 1 and order[-1] == 2  # the knee first, the dominated point last
    assert ranking.pick_rules(metrics) == ["knee", "best:fid", "best:steps_per_second"]
    assert ranking.pick([], MODES, metrics, "knee") is None


def test_racing_promotes_by_front():
    r = Racing(count=2, top=1, statistic="mean", mode="min", steps=10, modes=MODES)
    values = {"a": (1.0, 1.0), "b": (2.0, 5.0), "c": (3.0, 4.0), "d": (5.0, 6.0)}
    races = {cid: r.add(cid, {}) for cid in values}
    for cid, race in races.items():
        r.start(race, 0)
        r.ended(race, 0, layout.COMPLETED, values[cid][0], values[cid][0], 10,
                values[cid][1], values[cid][1])
    # c is dominated by b; a, b, d are on the front; the knee of the front is b
    assert r.leaders(1) == {"b"}
    over = {x.cid for x in r.decide(can_grow=False, exhausted=lambda steps: False)}
    assert over == {"a", "c", "d"} and races["b"].queued == {1}
    r2 = Racing(count=2, top=3, statistic="mean", mode="min", steps=10, modes=MODES)
    for cid in values:
        race = r2.add(cid, {})
        r2.start(race, 0)
        r2.ended(race, 0, layout.COMPLETED, values[cid][0], values[cid][0], 10,
                 values[cid][1], values[cid][1])
    assert r2.leaders(1) == {"a", "b", "d"}  # the whole front before the dominated c


def test_a_collapsed_configuration_is_never_on_the_front():
    rows = []
    for cid, (state, v1, v2) in {"good": ("completed", 0.5, 10.0),
                                 "cheap": ("completed", 0.2, 50.0),
                                 "collapsed": ("collapsed", 0.9, 99.0)}.items():
        rows.append({"config_key": cid, "key": cid + "0", "seed": 0, "state": state,
                     "value": v1, "value_2": v2, "stop_step": 10, "time_s": 1.0,
                     "objective": -math.inf if state == "collapsed" else v1,
                     "objective_2": -math.inf if state == "collapsed" else v2,
                     "finished": 1.0})
    c = configurations_table(pd.DataFrame(rows), {"count": 1, "statistic": "mean"}, "max",
                             ("max", "max")).set_index("config_key")
    assert c.loc["good", "front"] == 0 and c.loc["cheap", "front"] == 0
    assert math.isnan(c.loc["collapsed", "rank"]) and math.isnan(c.loc["collapsed", "front"])


def test_cost_columns_and_the_penalty_in_each_objective():
    from gansweep.jobs.loop import costs
    from gansweep.jobs.trial import TrialControl

    assert costs(100, 2.0) == {"train_seconds": 2.0, "steps_per_second": 50.0}
    assert costs(100, 2.0, 0.25)["gpu_seconds"] == 0.5  # a quarter of a GPU for 2 s
    ctl = TrialControl(trainer="gan", dataset="ring8", seed=0, steps=10, report_every=5,
                       score_every=None, metric="fid", mode="min", store="/x",
                       evaluators="/x", run_id="r", metric_2="gpu_seconds", mode_2="min",
                       gpus=0.25)
    row = {"step": 10, "fid": 3.0, "gpu_seconds": 0.5}
    assert ctl.objectives(row) == {"objective": 3.0, "objective_2": 0.5}
    assert ctl.objectives({**row, "collapsed": True}) == {"objective": math.inf,
                                                          "objective_2": math.inf}


def test_a_cost_objective_never_makes_every_report_score_fully(monkeypatch):
    from gansweep.jobs import loop
    from gansweep.trainers.registry import build

    fulls = []
    monkeypatch.setattr(loop, "score_model",
                        lambda trainer, full, evaluator=None: fulls.append(full) or {})
    trainer = build("gan", "ring8", {"width": 8, "batch_size": 16}, 0, device="cpu", steps=3)
    rows = loop.train_loop(trainer, 3, 1, None, [], lambda row: False,
                           required=("train_seconds", "steps_per_second"))
    assert fulls == [False, False, True]  # cheap scores, and the full one at the end
    assert all(r["train_seconds"] == r["time_s"] and r["steps_per_second"] > 0 for r in rows)


# ---- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("change, words", [
    ({"metric": ["fid", "fid"]}, ["metric", "twice"]),
    ({"metric": ["fid", "bogus"]}, ["metric", "bogus"]),
    ({"metric": ["fid", "train_seconds", "precision"]}, ["metric", "3 metrics"]),
    ({"metric": ["fid", "train_seconds"], "sampler": "cmaes"}, ["sampler", "tpe"]),
    ({"metric": ["fid", "gpu_seconds"]}, ["gpu_seconds", "train_seconds on CPU"]),
    ({"metric": ["train_seconds", "steps_per_second"]}, ["metric", "quality"]),
])
def test_bad_two_objective_specs_exit_2_naming_the_key(tmp_path, capsys, change, words):
    spec = tmp_path / "spec.yaml"
    raw = tiny_spec(tmp_path / "sweeps", **change)
    spec.write_text(json.dumps(raw))  # JSON is YAML
    assert main(["submit", str(spec)]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert not (tmp_path / "sweeps").exists()  # nothing made


def test_spec_forms_and_fingerprint():
    one = parse_spec(tiny_spec("/tmp/x"))
    assert one.metrics == ("modes_captured",) and one.metric_2 is None
    assert one.to_dict()["metric"] == "modes_captured"
    assert parse_spec(tiny_spec("/tmp/x", metric=["modes_captured"])).fingerprint() == \
        one.fingerprint()  # a list of one is that metric: the same sweep
    two = parse_spec(tiny_spec("/tmp/x", metric=["mixture_score", "steps_per_second"]))
    assert two.metrics == ("mixture_score", "steps_per_second") and two.modes == ("max", "max")
    assert two.to_dict()["metric"] == ["mixture_score", "steps_per_second"]
    assert parse_spec(two.to_dict()).fingerprint() == two.fingerprint()
    # ASHA compares one number: with two objectives it uses the first (docs/pareto.md)
    asha = parse_spec(tiny_spec("/tmp/x", metric=["fid", "train_seconds"],
                                early_stop={"asha": {"grace_steps": 20}}))
    assert asha.early_stop["asha"] and asha.metric == "fid"
    gpu = parse_spec(tiny_spec("/tmp/x", metric=["fid", "gpu_seconds"],
                               resources={"cpu": 1, "gpu": 0.5}))
    assert gpu.metric_2 == "gpu_seconds"


# ---- a real two-objective sweep -----------------------------------------------------------------

def _quiet(*_):
    pass


def test_a_two_objective_sweep_end_to_end(ray_local, tmp_path, capsys):
    raw = tiny_spec(tmp_path, name="pareto", trials=4, steps=40, report_every=20,
                    metric=["fid", "train_seconds"],
                    seeds={"count": 2, "top": 1, "statistic": "mean"}, max_concurrent=2)
    sweep = gansweep.submit(raw, log=_quiet)
    root = sweep.path
    study = optuna.load_study(study_name=load_sweep(root).study_name,
                              storage=f"sqlite:///{root / 'optuna.db'}")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert done and all(len(t.values) == 2 for t in done)

    # every run's rows carry the cost metrics; the trial results both objectives
    s = load_sweep(root)
    key = s.trials["key"].iloc[0]
    curve = s.curves[key]
    assert {"train_seconds", "steps_per_second"} <= set(curve.columns)
    assert "gpu_seconds" not in curve.columns  # gpu 0
    assert (curve["steps_per_second"] > 0).all()
    assert s.trials["objective_2"].notna().all()
    # what Optuna was told is the seed-robust value of each objective
    # (each configuration goes on to its second seed while it leads the front so far)
    assert 1 <= (s.configurations["seeds"] == 2).sum() < 4
    told = {t.user_attrs["gansweep_config"]: t.values for t in done}
    for r in s.configurations.to_dict("records"):
        assert told[r["config_key"]] == pytest.approx([r["objective"], r["objective_2"]])

    # status --json: the front, each point with both values, ordered by the first objective
    capsys.readouterr()
    assert main(["status", str(root), "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["metrics"] == ["fid", "train_seconds"] and st["front"]
    print("front:", [(c["metric"], c["metric_2"]) for c in st["front"]])
    assert all(c["front"] == 0 and c["metric"] is not None and c["metric_2"] is not None
               for c in st["front"])
    firsts = [c["metric"] for c in st["front"]]
    assert firsts == sorted(firsts)  # fid: lower first
    assert st["best"]["key"] in {c["key"] for c in st["front"]}  # the knee
    assert main(["status", str(root)]) == 0
    assert "Pareto front" in capsys.readouterr().out

    # the API: .front and .best (the knee)
    front = sweep.front
    assert set(front["key"]) == {c["key"] for c in st["front"]} and "front" in front.columns
    assert sweep.best["key"] == st["best"]["key"] and "value_2" in sweep.best

    # the report: a Pareto section, its figure, a front column in configurations.csv
    out = tmp_path / "report"
    sweep.report(out)
    md = (out / "report.md").read_text()
    assert "## Pareto front" in md
    assert (out / "img" / "pareto_pareto.png").stat().st_size > 0
    csv = pd.read_csv(out / "configurations.csv")
    assert "front" in csv.columns and "metric_2" in csv.columns

    # train --from --pick best:fid trains the front's best in that objective
    best_q = min(st["front"], key=lambda c: c["metric"])
    run = tmp_path / "run"
    assert main(["train", "--from", str(root), "--pick", "best:fid",
                 "--steps", "20", "--report-every", "20", "--out", str(run)]) == 0
    err = capsys.readouterr()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"] == s.configs[best_q["key"]], err.out
    # the Python API mirrors it: the knee by default
    gansweep.train(from_sweep=root, out=tmp_path / "knee", steps=20, report_every=20,
                   log=_quiet)
    knee = json.loads((tmp_path / "knee" / "config.json").read_text())
    assert knee["config"] == s.configs[st["best"]["key"]]
    assert main(["train", "--from", str(root), "--pick", "best:precision", "--out",
                 str(tmp_path / "bad")]) == 2
    assert "--pick" in capsys.readouterr().err and not (tmp_path / "bad").exists()

    # resume: the two-objective study opens again and the sweep grows
    grown = gansweep.resume(root, trials=5, log=_quiet)
    assert grown.sweep.configurations["config_key"].nunique() == 5
    study = optuna.load_study(study_name=s.study_name, storage=f"sqlite:///{root / 'optuna.db'}")
    assert all(len(t.values) == 2 for t in
               study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))


def test_collapsed_runs_are_penalised_in_both_objectives(ray_local, tmp_path, capsys):
    raw = tiny_spec(tmp_path, name="collapsing", trials=2, steps=4, report_every=1,
                    metric=["mixture_score", "train_seconds"], seeds=1,
                    early_stop={"collapse": {"threshold": 1.0, "patience": 2,
                                             "grace_steps": 0}})
    sweep = gansweep.submit(raw, log=_quiet)
    s = sweep.sweep
    assert (s.trials["state"] == layout.COLLAPSED).all()
    assert (s.trials["objective"] == -math.inf).all()  # mixture_score: higher is better
    assert (s.trials["objective_2"] == math.inf).all()  # train_seconds: lower is better
    assert s.trials["value_2"].map(math.isfinite).all()  # the metric columns stay honest
    study = optuna.load_study(study_name=s.study_name,
                              storage=f"sqlite:///{sweep.path / 'optuna.db'}")
    told = [t.values for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    assert told and all(v == [-math.inf, math.inf] for v in told)
    assert len(sweep.front) == 0 and sweep.best is None
    capsys.readouterr()
    assert main(["status", str(sweep.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["front"] == []


def test_pick_on_a_one_objective_sweep_exits_2(ray_local, tmp_path, capsys):
    sweep = gansweep.submit(tiny_spec(tmp_path, name="single", trials=1, steps=20), log=_quiet)
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", "--from", str(sweep.path), "--pick", "knee", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--pick" in err and "one objective" in err and not out.exists()
    with pytest.raises(ConfigError, match="--pick"):
        sweep.pick("knee")
    assert len(sweep.front) == 1 and sweep.front["key"].iloc[0] == sweep.best["key"]
