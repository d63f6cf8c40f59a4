"""Early stopping in real sweeps on a real local Ray: collapsed runs of every trainer family,
diverged runs, ASHA beside the collapse stopper, a collapse decision that survives a trial's
process being killed. (A small version of benchmarks/budget.py, which replaced
benchmarks/early_stop.py, is tests/test_budget_benchmark.py.)

Settings are tiny (a few steps per report) so the whole file runs in a few minutes on two busy
cores. Where a test forces collapse with `threshold: 1.0` it also checks from the trial's own
metrics.csv that every counted report really was below the threshold.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import threading
import time

import numpy as np
import optuna
import pytest

from gansweep.analysis.layout import TrialStore
from gansweep.jobs import sweep_dir as sd
from gansweep.jobs.collapse import CollapseDetector
from gansweep.jobs.spec import parse_spec
from gansweep.jobs.status import collect, format_status
from gansweep.jobs.stopping import make_scheduler
from gansweep.jobs.submit import submit
from tests.conftest import run_cli, tiny_spec

QUIET = {"log": lambda *_: None}


# ---- helpers -------------------------------------------------------------------------------

def results(root) -> dict:
    return {p.parent.name: json.loads(p.read_text())
            for p in sorted((root / sd.TRIALS).glob("*/result.json"))}


def rows(root, key) -> list[dict]:
    text = (root / sd.TRIALS / key / "metrics.csv").read_text()
    return list(csv.DictReader(io.StringIO(text)))


def config_of(root, key) -> dict:
    return json.loads((root / sd.TRIALS / key / "config.json").read_text())["config"]


def study(root):
    meta = json.loads((root / sd.META).read_text())
    return optuna.load_study(study_name=meta["study_name"],
                             storage=f"sqlite:///{root / sd.OPTUNA_DB}")


def expected_stop(grace: int, patience: int, every: int) -> int:
    """The step a run that is below the threshold at every report is stopped at: reports at a
    step >= grace_steps count (as ASHA's grace period, the report at grace_steps is judged),
    and the patience-th counted report stops it."""
    first = max(every, -(-grace // every) * every)  # first report at or after the grace
    return first + (patience - 1) * every


def assert_optuna_clean(root, n: int, pruned: int = 0) -> None:
    """Every trial told, none left RUNNING, no NaN anywhere in the study; `pruned` of them
    (those ASHA stopped) PRUNED with their intermediate values, the rest COMPLETE."""
    trials = study(root).get_trials(deepcopy=False)
    assert len(trials) == n
    states = [t.state for t in trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == pruned, trials
    for t in trials:
        assert not any(math.isnan(v) for v in t.intermediate_values.values()), t
        if t.state == optuna.trial.TrialState.PRUNED:  # Optuna keeps its last report
            assert t.intermediate_values and t.value == t.intermediate_values[
                max(t.intermediate_values)], t
            continue
        assert t.state == optuna.trial.TrialState.COMPLETE, t
        assert t.value is not None and not math.isnan(t.value), t


# ---- the detector on its own ---------------------------------------------------------------

def test_detector_counts_consecutive_reports_after_the_grace_period():
    d = CollapseDetector(threshold=0.5, patience=3, grace_steps=20)
    low = [{"step": s, "mode_diversity": 0.1} for s in (10, 20, 30)]
    assert [d.update(r) for r in low] == [False, False, False]  # step 10: still in grace
    assert d.below == 2
    assert d.update({"step": 40, "mode_diversity": 0.1})  # third counted report
    d = CollapseDetector(threshold=0.5, patience=2)
    d.update({"step": 1, "mode_diversity": 0.1})
    assert not d.update({"step": 2, "mode_diversity": 0.9})  # a recovery resets the count
    assert d.below == 0 and not d.update({"step": 3, "mode_diversity": 0.1})
    assert d.update({"step": 4, "mode_diversity": 0.1})
    som = CollapseDetector(signal="unit_utilization", threshold=0.2, patience=1)
    assert not som.update({"step": 1, "mode_diversity": 0.0})  # a SOM watches its own signal
    assert som.update({"step": 1, "unit_utilization": 0.1})
    off = CollapseDetector(enabled=False, patience=1)
    assert not off.update({"step": 9, "mode_diversity": 0.0})


def test_the_trend_rule_spares_a_run_gaining_modes_and_stops_a_flat_one():
    """ring8's steps of an eighth: one mode, then two (still under 0.5) is a run recovering;
    the same reports without `trend` stop it at the third."""
    rising = [0.0, 0.125, 0.25, 0.25, 0.25]
    plain = CollapseDetector(threshold=0.5, patience=3)
    trend = CollapseDetector(threshold=0.5, patience=3, trend=True)
    got_plain = [plain.update({"step": s, "mode_diversity": v}) for s, v in enumerate(rising)]
    got_trend = [trend.update({"step": s, "mode_diversity": v}) for s, v in enumerate(rising)]
    assert got_plain == [False, False, True, True, True]
    # stopped once the window [0.25, 0.25, 0.25] has stopped rising
    assert got_trend == [False, False, False, False, True]
    falling = CollapseDetector(threshold=0.5, patience=2, trend=True)
    assert [falling.update({"step": s, "mode_diversity": v})
            for s, v in enumerate([0.375, 0.25])] == [False, True]


def test_trend_goes_from_the_spec_to_the_trials_rule_and_only_when_asked():
    from gansweep.jobs.early_stop import collapse_rule, validate_early_stop

    asked = validate_early_stop({"collapse": {"trend": True}}, "gan")
    assert asked["collapse"]["trend"] is True
    assert collapse_rule(asked, "gan", 400).detector().trend
    plain = validate_early_stop({"collapse": {"trend": False}}, "gan")
    assert "trend" not in plain["collapse"]  # older frozen specs keep their fingerprints
    assert validate_early_stop(plain, "gan") == plain
    assert not collapse_rule(plain, "gan", 400).trend


def test_detector_state_round_trips_through_the_trial_store(tmp_path):
    """The entry's path: the detector's state_dict inside state.pt in the trial store, then
    read back into a fresh detector of the same settings (what a resumed trial builds)."""
    settings = {"threshold": 0.5, "patience": 3, "grace_steps": 0}
    d = CollapseDetector(**settings)
    for step in (1, 2):
        assert not d.update({"step": step, "mode_diversity": 0.0})
    store = TrialStore(str(tmp_path / "trials"))
    store.write_torch("k", "state.pt", {"trainer": {}, "history": [], "detector": d.state_dict()})
    resumed = CollapseDetector(**settings)
    resumed.load_state_dict(store.read_torch("k", "state.pt")["detector"])
    assert resumed.below == 2 and resumed.window == [0.0, 0.0]
    assert resumed.update({"step": 3, "mode_diversity": 0.0})  # the third report stops it
    fresh = CollapseDetector(**settings)  # what a resume that lost the window would do
    assert not fresh.update({"step": 3, "mode_diversity": 0.0})


def test_asha_keeps_stopping_poor_runs_beside_penalised_ones():
    """Ray's ASHA interpolates a percentile cutoff; two collapsed trials' -inf make it NaN, and
    then a merely poor trial is never stopped. gansweep's ASHA leaves penalised results to the
    flag stopper and keeps ranking the rest."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import ASHAScheduler

    def decisions(scheduler, values):
        scheduler.set_search_properties("objective", "max")
        trials = [Trial("__fake", stub=True) for _ in values]
        for t in trials:
            scheduler.on_trial_add(None, t)
        return [scheduler.on_trial_result(None, t, {"step": 1, "objective": v})
                for t, v in zip(trials, values)]

    values = [1.0, -math.inf, -math.inf, 0.5]
    plain = ASHAScheduler(time_attr="step", max_t=9, grace_period=1, reduction_factor=3)
    with np.errstate(invalid="ignore"):
        assert decisions(plain, values)[-1] == "CONTINUE"  # the NaN cutoff lets 0.5 through
    ours = make_scheduler({"asha": {"grace_steps": 1, "reduction_factor": 3}}, 9)
    assert decisions(ours, values) == ["CONTINUE", "CONTINUE", "CONTINUE", "STOP"]


def test_tpe_keeps_sampling_after_penalised_trials():
    """The penalty is a legal Optuna value: TPE ranks those trials last and keeps going."""
    s = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
        seed=0, n_startup_trials=4))
    for i in range(8):
        t = s.ask()
        x = t.suggest_float("lr_d", 1e-3, 1e-1, log=True)
        s.tell(t, -math.inf if x > 1e-2 else float(i))
    assert len(s.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 8
    assert math.isfinite(s.best_value)


# ---- real sweeps ---------------------------------------------------------------------------

IMAGE = {"dataset": {"name": "digits", "image_size": 16}, "metric": "coverage",
         "fixed": {"width": 8, "batch_size": 32, "code_length": 8}}
FAMILIES = {
    # threshold 1.0: coverage is at most ~0.97 even for a perfect generator (k = 5). The image
    # families' sweeps carry `augment` (and DCGAN's `r1_gamma`) too, fixed or searched, so a
    # sweep hands them through spec, study and trial to the trainer (their effect:
    # tests/test_augment.py, tests/test_stabilisers.py)
    "dcgan": {**IMAGE, "fixed": {**IMAGE["fixed"], "augment": "translation,cutout"},
              "space": {"r1_gamma": {"low": 0.1, "high": 10.0, "log": True}},
              "threshold": 1.0},
    "wgan": {**IMAGE, "fixed": {**IMAGE["fixed"], "n_critic": 1}, "threshold": 1.0,
             "space": {"augment": {"choices": ["translation", "cutout"]}}},
    "wgan-gp": {**IMAGE, "fixed": {**IMAGE["fixed"], "n_critic": 1,
                                   "augment": "color,translation,cutout"}, "threshold": 1.0},
    # a real collapse at the default threshold: the online rule at eta 10 overshoots and one
    # unit ends up winning every sample (unit_utilization 1/16); with a wider neighbourhood
    # (sigma0 3) the same map diverges instead, see the divergence tests
    "som": {"dataset": "digits", "metric": "quantization_error", "threshold": None,
            "fixed": {"rows": 4, "cols": 4, "rule": "online", "eta0": 10.0, "sigma0": 2.0}},
}


@pytest.mark.parametrize("trainer", list(FAMILIES))
def test_collapse_stops_a_trial_of_every_family(ray_local, tmp_path, trainer):
    f = FAMILIES[trainer]
    every, grace, patience, steps = 1, 0, 2, 4
    collapse = {"patience": patience, "grace_steps": grace}
    if f["threshold"] is not None:
        collapse["threshold"] = f["threshold"]
    spec = parse_spec({"name": trainer, "trainer": trainer, "dataset": f["dataset"],
                       "trials": 1, "steps": steps, "report_every": every,
                       "metric": f["metric"], "fixed": f["fixed"], "space": f.get("space", {}),
                       "early_stop": {"collapse": collapse}, "max_concurrent": 1,
                       "storage": str(tmp_path)})
    root = submit(spec, **QUIET)
    (key, r), = results(root).items()
    trained = json.loads((root / "trials" / key / "config.json").read_text())["config"]
    if "augment" in f["fixed"]:
        assert trained["augment"] == f["fixed"]["augment"]
    for name, dist in f.get("space", {}).items():
        value = trained[name]
        assert value in dist["choices"] if "choices" in dist else \
            dist["low"] <= value <= dist["high"]
        assert study(root).trials[0].params[name] == value
    if trainer == "dcgan":  # the penalty it trained with is reported at every report
        assert all(float(x["r1"]) >= 0 for x in rows(root, key))
    stop = expected_stop(grace, patience, every)
    assert r["stop_reason"] == "collapsed" and r["stop_step"] == stop < steps
    signal_name = "unit_utilization" if trainer == "som" else "mode_diversity"
    threshold = f["threshold"] or 0.2  # the SOM default
    values = [float(x[signal_name]) for x in rows(root, key)]
    assert len(values) == stop // every and all(v < threshold for v in values), values
    s = collect(root)
    assert s["counts"]["collapsed"] == 1
    (row,) = s["trials"]
    assert row["state"] == "collapsed" and row["step"] == stop
    text = format_status(s)  # what `gansweep status` prints
    assert "1 collapsed" in text
    assert f"{trainer} on {'digits' if trainer == 'som' else 'digits (image_size 16)'}," in text
    assert_optuna_clean(root, 1)
    assert study(root).trials[0].value == (math.inf if spec.mode == "min" else -math.inf)


def test_a_collapse_decision_survives_the_trial_process_being_killed(ray_local, tmp_path):
    """End to end: a gan trial with patience 3 is SIGKILLed after its second below-threshold
    report; Tune retries it, the entry restores it from the trial store's state.pt (detector
    included), and it is stopped at the third report, the same step as without the kill. Had
    the restored trial lost the count, it would stop two reports later."""
    every, patience, steps = 200, 3, 1200
    spec = parse_spec(tiny_spec(
        tmp_path, name="killed", trials=1, steps=steps, report_every=every, max_concurrent=1,
        max_failures=2, fixed={"width": 16, "batch_size": 64, "lr_g": 1e-4, "lr_d": 1e-4},
        early_stop={"collapse": {"threshold": 1.0, "patience": patience, "grace_steps": 0}}))
    store = TrialStore(str(tmp_path / "killed" / sd.TRIALS))
    killed: list[int] = []

    def kill_after_two_reports():
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            for key in store.keys():  # noqa: SIM118 (a TrialStore, not a dict)
                data = store.read(key, "metrics.csv")
                lease = store.read_json(key, "lease.json")
                if data and len(data.decode().strip().splitlines()) == 3 and lease:
                    os.kill(lease["pid"], signal.SIGKILL)  # this test's own trial process
                    killed.append(lease["pid"])
                    return
            time.sleep(0.01)

    watcher = threading.Thread(target=kill_after_two_reports, daemon=True)
    watcher.start()
    root = submit(spec, **QUIET)
    watcher.join(timeout=5)
    assert killed, "the trial was never interrupted"
    (key, r), = results(root).items()
    stop = expected_stop(0, patience, every)
    assert r["resumed_from_step"] == 2 * every  # it really restarted from the checkpoint
    assert r["stop_reason"] == "collapsed" and r["stop_step"] == stop < steps
    assert [int(x["step"]) for x in rows(root, key)] == [every, 2 * every, 3 * every]
    assert all(float(x["mode_diversity"]) < 1.0 for x in rows(root, key))
    s = collect(root)
    assert s["counts"]["collapsed"] == 1 and s["trials"][0]["step"] == stop
    assert_optuna_clean(root, 1)


def check_divergence(root, spec, blew_up, diverging) -> None:
    """Diverged trials ended at their first report; the others ran every report untouched;
    status shows both; Optuna holds no NaN and no trial left RUNNING."""
    every, steps = spec.report_every, spec.steps
    rs = results(root)
    assert len(rs) == spec.trials  # the sweep ran every configuration to an end
    assert {r["stop_reason"] for r in rs.values()} == {"diverged", "completed"}, rs
    for key, r in rs.items():
        first = rows(root, key)[0]
        if r["stop_reason"] == "diverged":
            assert blew_up(first) and r["stop_step"] == every and len(rows(root, key)) == 1
            assert diverging(config_of(root, key))
        else:  # untouched by its neighbour's blow-up: every report, finite scores
            assert not diverging(config_of(root, key))
            assert r["stop_step"] == steps and len(rows(root, key)) == steps // every
            assert math.isfinite(r["final"][spec.metric]) and math.isfinite(r["objective"])
    s = collect(root)
    assert s["counts"]["diverged"] >= 1 and s["counts"]["completed"] >= 1
    assert s["best"]["state"] == "completed"
    assert "diverged" in format_status(s)
    text = run_cli("status", str(root)).stdout  # what a user types
    assert f"diverged at step {every}" in text and f"{s['counts']['diverged']} diverged" in text
    assert_optuna_clean(root, spec.trials)  # diverged: told the penalty (+-inf), never NaN
    worst = math.inf if spec.mode == "min" else -math.inf
    values = sorted(t.value for t in study(root).trials)
    assert values.count(worst) == s["counts"]["diverged"]


def test_a_som_that_diverges_ends_at_once_and_the_sweep_goes_on(ray_local, tmp_path):
    """A real hyperparameter: the online SOM at eta0 10 (the schema's maximum) with a wide
    neighbourhood overshoots on every sample, its weights overflow in the first epoch and its
    quantization error is NaN; at eta0 0.5 the same map trains normally."""
    spec = parse_spec({"name": "som-eta", "trainer": "som", "dataset": "digits", "trials": 4,
                       "steps": 2, "report_every": 1, "metric": "quantization_error",
                       "space": {"eta0": {"choices": [0.5, 10.0]}},
                       "fixed": {"rows": 4, "cols": 4, "rule": "online", "sigma0": 3.0},
                       "max_concurrent": 2, "seeds": 1, "storage": str(tmp_path)})
    root = submit(spec, **QUIET)
    check_divergence(root, spec, lambda row: not math.isfinite(float(row["quantization_error"])),
                     lambda config: config["eta0"] == 10.0)
    # a map is scored in data space: no image evaluator was trained for it, by driver or trial
    assert not (root / "evaluators").exists()


def test_a_gan_whose_loss_overflows_ends_at_once_and_the_sweep_goes_on(ray_local, tmp_path):
    """A user's file of finite but enormous values (~1e38, near float32's limit): real
    training, no mocks. The discriminator's batch-mean loss over 256 such samples overflows
    to inf in the first step, while over 16 samples it stays finite, so batch_size decides
    which trials diverge."""
    rng = np.random.default_rng(0)
    data = np.clip(rng.standard_normal((500, 2)) * 1e38, -3e38, 3e38).astype(np.float32)
    path = tmp_path / "huge.npy"
    np.save(path, data)
    spec = parse_spec({"name": "huge", "trainer": "gan", "dataset": str(path), "trials": 4,
                       "steps": 10, "report_every": 5, "metric": "coverage",
                       "space": {"batch_size": {"choices": [16, 256]}},
                       "fixed": {"width": 8, "code_length": 2, "minibatch_disc": False},
                       "max_concurrent": 2, "seeds": 1, "storage": str(tmp_path)})
    root = submit(spec, **QUIET)
    check_divergence(root, spec, lambda row: not math.isfinite(float(row["loss_d"])),
                     lambda config: config["batch_size"] == 256)
    shown = json.loads(run_cli("status", str(root), "--json").stdout)["trials"]
    assert {t["state"] for t in shown if t["objective"] is None} == {"diverged"}  # JSON: no inf
    for key, r in results(root).items():  # a diverged run leaves no samples behind
        assert (root / sd.TRIALS / key / "samples.npy").is_file() == (r["stop_reason"]
                                                                       == "completed")


def test_asha_stops_poor_trials_and_they_say_so(ray_local, tmp_path):
    """ASHA on the objective beside the collapse stopper: its stops are recorded as `asha`
    with the step of the last report, which is where the trial's checkpoint stands."""
    every, steps = 5, 10
    spec = parse_spec(tiny_spec(
        tmp_path, name="asha", dataset="gauss1d", metric="fid", trials=6, steps=steps,
        report_every=every, max_concurrent=1,  # one at a time: the rung order is fixed
        fixed={"width": 8, "batch_size": 32},
        early_stop={"collapse": False, "asha": {"grace_steps": every, "reduction_factor": 2}}))
    root = submit(spec, **QUIET)
    rs = results(root)
    assert len(rs) == spec.trials
    asha = {k: r for k, r in rs.items() if r["stop_reason"] == "asha"}
    assert asha, rs
    store = TrialStore(str(root / sd.TRIALS))
    for key, r in asha.items():
        assert r["stop_step"] == every < steps  # the one rung below max_t
        assert r["final"]["step"] == r["stop_step"] and math.isfinite(r["objective"])
        assert store.read_torch(key, "state.pt")["trainer"]["step"] == r["stop_step"]
        assert len(rows(root, key)) == r["stop_step"] // every
    assert {r["stop_reason"] for r in rs.values()} <= {"asha", "completed"}
    s = collect(root)
    assert s["counts"]["asha"] == len(asha) and "asha" in format_status(s)
    # what TPE learns: a run ASHA cut short is PRUNED (Optuna's own pruners' state), with
    # the objective at each report as its intermediate values, never a COMPLETE value
    assert_optuna_clean(root, spec.trials, pruned=len(asha))
    for t in study(root).get_trials(states=(optuna.trial.TrialState.PRUNED,)):
        assert max(t.intermediate_values) == every
