"""Seed racing and budgets in real sweeps on a real local Ray: configurations judged on several
seeds with Optuna told the robust value, `gansweep train --from` training what a sweep
returned, step and hour budgets that are spent, shown, resumed and extended."""
from __future__ import annotations

import json
import math

import optuna
import pytest

from gansweep.analysis.layout import TrialStore
from gansweep.analysis.records import RunResult
from gansweep.jobs import sweep_dir as sd
from gansweep.jobs.spec import parse_spec
from gansweep.jobs.status import collect, format_status
from gansweep.jobs.submit import resume, submit
from tests.conftest import run_cli, tiny_spec

QUIET = {"log": lambda *_: None}


def results(root) -> dict:
    return {p.parent.name: json.loads(p.read_text())
            for p in sorted((root / sd.TRIALS).glob("*/result.json"))}


def study(root):
    meta = json.loads((root / sd.META).read_text())
    return optuna.load_study(study_name=meta["study_name"],
                             storage=f"sqlite:///{root / sd.OPTUNA_DB}")


def more_hours(root, seconds: float, until, tries: int = 4,
               said: list[list[str]] | None = None) -> bool:
    """Resume with `seconds` more of the hour budget, twice as many each time, until
    `until()` holds. The budget is wall-clock, so a busy machine may spend a driver run's few
    seconds starting Ray's workers before any trial trains (CI's 2 cores, with the other test
    worker beside them, did). `said`: each resume's driver lines are appended to it."""
    for _ in range(tries):
        if until():
            return True
        lines: list[str] = []
        if said is not None:
            said.append(lines)
        resume(root, budget={"hours": collect(root)["budget"]["hours_spent"] + seconds / 3600},
               log=lines.append)
        seconds *= 2
    return until()


@pytest.fixture(scope="module")
def raced(ray_local, tmp_path_factory):
    """Six configurations on gauss1d (fid varies smoothly with the learning rates), judged
    on up to 3 seeds with one configuration racing at a time."""
    storage = tmp_path_factory.mktemp("raced")
    spec = parse_spec(tiny_spec(storage, name="raced", dataset="gauss1d", metric="fid",
                                trials=6, steps=20, report_every=10,
                                fixed={"width": 8, "batch_size": 32},
                                seeds={"count": 3, "top": 1},
                                early_stop={"collapse": False}))
    return spec, submit(spec, **QUIET)


def test_only_configurations_that_win_their_race_get_more_seeds(raced):
    spec, root = raced
    s = collect(root)
    by_seeds = {}
    for c in s["ranking"]:
        by_seeds.setdefault(len(c["seed_list"]), []).append(c)
        assert c["seed_list"] == [0, 1, 2][:len(c["seed_list"])]  # seeds in order, no gaps
    assert s["configurations"] == 6 and s["runs"] == sum(len(c["seed_list"])
                                                        for c in s["ranking"])
    assert 3 in by_seeds and 1 in by_seeds  # some won a race, some lost
    # a loser lost to configurations at least as good on the first seed (fid: lower wins)
    first = {c["key"]: c["values"][0] for c in s["ranking"]}
    best_first = min(first.values())
    assert min(c["values"][0] for c in by_seeds[3]) == best_first
    # what the sweep returns was judged on every seed
    assert s["best"]["judged_on_all_seeds"] and s["best"]["seeds"] == 3
    assert "over seeds 0, 1, 2" in format_status(s)


def test_optuna_is_told_the_mean_over_seeds(raced):
    spec, root = raced
    rs = results(root)
    s = collect(root)
    trials = study(root).get_trials(deepcopy=False)
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    assert len(trials) == s["configurations"]
    told = sorted(t.value for t in trials)
    robust = sorted(sum(rs[k]["objective"] for k in _run_keys(root, c)) / len(c["seed_list"])
                    for c in s["ranking"])
    assert told == pytest.approx(robust)


def _run_keys(root, config_row) -> list[str]:
    store = TrialStore.of(root)
    want = config_row["config"]
    return [k for k in store.keys() if store.read_json(k, "config.json")["config"] == want]


def test_train_from_a_sweep_trains_its_returned_configuration_on_a_fresh_seed(raced, tmp_path):
    spec, root = raced
    out = tmp_path / "again"
    # --steps past the sweep's 20: the longer-runs lever (docs/benchmarks/quality.md)
    proc = run_cli("train", "--from", str(root), "--steps", "30", "--out", str(out))
    record = json.loads((out / "config.json").read_text())
    steps = [int(line.split(",")[0]) for line in
             (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps[-1] == 30 and spec.steps == 20
    best = collect(root)["best"]
    assert record["config"] == best["config"] and record["trainer"] == "gan"
    assert record["seed"] == 3 and record["dataset"] == "gauss1d"  # the sweep used 0, 1, 2
    assert "over seeds 0, 1, 2" in proc.stdout
    bad = run_cli("train", "gan", "--from", str(root), "--out", str(tmp_path / "x"),
                  check=False)
    assert bad.returncode == 2 and "drop the trainer" in bad.stderr


def test_a_step_budget_is_spent_exactly_and_extended_on_resume(ray_local, tmp_path):
    """No trials key: 200 budget steps of 40-step runs are five runs; a resume with nothing
    left starts nothing; --budget raises it and two more run."""
    spec = parse_spec({k: v for k, v in tiny_spec(
        tmp_path, name="steps", trials=None, steps=40, report_every=20,
        budget={"steps": 200}, early_stop={"collapse": False}).items() if v is not None})
    root = submit(spec, **QUIET)
    s = collect(root)
    assert s["runs"] == 5 and s["steps_spent"] == 200
    assert s["budget"]["steps_left"] == 0 and "200 of 200 training steps spent" in \
        format_status(s)
    before = results(root)
    resume(root, **QUIET)
    assert results(root) == before  # nothing left: nothing ran
    # (budget-aware racing switched on for what is left: one seed each, so no leader has
    # seeds to keep room for, and the same two runs fit)
    proc = run_cli("resume", str(root), "--budget", "steps=280,finish_leaders=true")
    assert proc.returncode == 0
    s = collect(root)
    assert s["runs"] == 7 and s["steps_spent"] == 280 and s["budget"]["steps"] == 280
    assert s["budget"]["finish_leaders"] is True and "budget: finish_leaders" in \
        format_status(s)
    assert all(before[k] == r for k, r in results(root).items() if k in before)


def test_stopped_runs_count_up_to_their_stop_and_give_the_rest_back(ray_local, tmp_path):
    """Every run collapses at its first report (threshold 1.0: mode diversity never reaches
    it), so each spends 20 of its 40 planned steps: 200 budget steps buy nine runs, not five,
    and the last 20 stay unspent because a run starts only when its planned 40 fit."""
    spec = parse_spec({k: v for k, v in tiny_spec(
        tmp_path, name="refund", trials=None, steps=40, report_every=20,
        budget={"steps": 200},
        early_stop={"collapse": {"threshold": 1.0, "patience": 1, "grace_steps": 0}}).items()
        if v is not None})
    root = submit(spec, **QUIET)
    s = collect(root)
    assert s["counts"]["collapsed"] == s["runs"] == 9 and s["steps_spent"] == 180
    assert s["budget"]["steps_left"] == 20


def revive_spec(tmp_path, name: str, trials: int, steps: int, budget: int, grace: int = 0,
                **more):
    """Every run collapses at its first report from `grace` on (threshold 1.0: mode diversity
    never reaches it), with revival on; two reports a run."""
    return parse_spec(tiny_spec(
        tmp_path, name=name, trials=trials, steps=steps, report_every=steps // 2,
        budget={"steps": budget}, **more,
        early_stop={"collapse": {"threshold": 1.0, "patience": 1, "grace_steps": grace,
                                 "revive": True}}))


def test_revive_trains_the_best_paused_runs_with_the_steps_no_fresh_run_can_use(
        ray_local, tmp_path):
    """`trials: 6` of 400-step runs that all collapse at step 200 leave 800 of 2000 budget
    steps that no new configuration may use: with `revive`, the paused runs with the best
    metric at their pause train on from their checkpoints to step 400, four of them. Each
    step counts once, where it was spent (the pauses before the revivals); the paused results
    are kept; Optuna learns each revived value as a trial of its own with the same
    parameters."""
    from gansweep.analysis.sweeps import budget_events, load_sweep
    from gansweep.jobs.feedback import CID_ATTR, REVIVED_ATTR

    # fid: continuous (lower wins), so which runs are revived is a real choice
    spec = revive_spec(tmp_path, "revive", trials=6, steps=400, budget=2000, metric="fid")
    root = submit(spec, **QUIET)
    res = results(root)
    revived = {k: r for k, r in res.items() if r.get("revived")}
    paused = {k: r for k, r in res.items() if not r.get("revived")}
    assert len(res) == 6 and len(revived) == 4
    assert all(r["stop_reason"] == "collapsed" and r["stop_step"] == 200
               for r in paused.values())
    for key, r in revived.items():
        assert r["revived"]["step"] == 200 and r["stop_step"] == 400
        assert r["stop_reason"] in ("completed", "diverged") and r["resumed_from_step"] == 200
        steps = [int(float(ln.split(",")[0])) for ln in
                 (root / sd.TRIALS / key / "metrics.csv").read_text().splitlines()[1:]]
        assert steps == [200, 400]  # one history, trained on from the pause, nothing twice
        aside = list((root / sd.TRIALS / key).glob("result.json.paused-*"))
        assert len(aside) == 1 and json.loads(aside[0].read_text())["stop_step"] == 200
    metric = lambda r: r.get("revived", r)["final"]["fid"]  # at the pause  # noqa: E731
    assert max(map(metric, revived.values())) <= min(map(metric, paused.values()))
    assert len({metric(r) for r in res.values()}) == 6
    s = collect(root)
    assert s["steps_spent"] == 2000 and s["budget"]["steps_left"] == 0 and s["revived"] == 4
    assert "4 of them trained on after collapsing" in run_cli("status", str(root)).stdout
    events = budget_events(load_sweep(root).trials)
    assert events["steps"].sum() == 2000 and len(events) == 10
    assert list(events["state"][:6]) == ["collapsed"] * 6  # the pauses came first
    assert list(events["runs"]) == [1, 2, 3, 4, 5, 6, 6, 6, 6, 6]  # each run counted once
    trials = study(root).trials
    firsts = {t.user_attrs[CID_ATTR]: t for t in trials if REVIVED_ATTR not in t.user_attrs}
    again = [t for t in trials if REVIVED_ATTR in t.user_attrs]
    assert len(firsts) == 6 and len(again) == 4
    for t in again:
        assert t.params == firsts[t.user_attrs[CID_ATTR]].params and math.isfinite(t.value)
    before = results(root)
    resume(root, **QUIET)  # nothing left: a resume revives nothing more
    assert results(root) == before


def test_a_resume_with_more_budget_revives_runs_paused_before(ray_local, tmp_path):
    """Three runs pause at step 20 of 40 and one is revived with the 20 steps left of an
    80-step budget; `resume --budget steps=120` revives the other two. The driver's summary,
    which held those as collapsed, is read again for them, so status and reports see them."""
    from gansweep.analysis.sweeps import read_summary

    spec = revive_spec(tmp_path, "later", trials=3, steps=40, budget=80)
    root = submit(spec, **QUIET)
    s = collect(root)
    assert s["counts"]["collapsed"] == 2 and s["revived"] == 1 and s["steps_spent"] == 80
    assert sorted(d["result"]["stop_step"] for d in read_summary(root).values()) == [20, 20, 40]
    resume(root, budget={"steps": 120}, **QUIET)
    s = collect(root)
    assert s["revived"] == 3 and s["steps_spent"] == 120 and s["counts"]["collapsed"] == 0
    digests = read_summary(root)
    assert [d["result"]["stop_step"] for d in digests.values()] == [40, 40, 40]
    assert all(d["result"]["revived"]["step"] == 20 for d in digests.values())
    # a budget is a total: one no larger than what was spent is refused, not a silent no-op
    from gansweep.trainers.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--budget steps=100 is not more than the 120 steps "
                                          r"already spent; .* steps=220 for 100 more"):
        resume(root, budget={"steps": 100}, **QUIET)
    # a driver killed after a revival ended, before it wrote the summary, left the paused
    # digests there: the next driver, even one with nothing to run, reads them again
    path = root / "summary.json"
    data = json.loads(path.read_text())
    for d in data["runs"].values():
        d["result"] = {**d["result"], "stop_reason": "collapsed", "stop_step": 20}
        del d["result"]["revived"]
    path.write_text(json.dumps(data))
    assert collect(root)["steps_spent"] == 60  # what a reader sees until then
    resume(root, **QUIET)
    assert collect(root)["steps_spent"] == 120 and collect(root)["revived"] == 3


def test_a_run_that_collapsed_at_its_last_report_is_not_revived(ray_local, tmp_path):
    """Grace until the last step: both runs collapse at step 40 of 40, so there is nothing to
    train on, and the 120 steps left stay unspent."""
    spec = revive_spec(tmp_path, "late", trials=2, steps=40, budget=200, grace=40)
    root = submit(spec, **QUIET)
    res = results(root)
    assert [(r["stop_reason"], r["stop_step"]) for r in res.values()] == [("collapsed", 40)] * 2
    assert not any(r.get("revived") for r in res.values())
    assert collect(root)["steps_spent"] == 80 and len(study(root).trials) == 2


def test_an_hour_budget_that_runs_out_mid_revival_leaves_it_to_go_on_first(
        ray_local, tmp_path, monkeypatch):
    """One run pauses at step 200 and is revived toward step 500 000 (the step budget lets
    it); the hour budget stops it on the way. That stop is not the revival's outcome: Optuna
    is not told a revived value, the paused result stays aside and no result is written. A
    resume with more hours continues the revival from its checkpoint with detection still off
    (threshold 1.0 would stop it at its next report), as the same run, trained nowhere twice.
    summary.json takes in each ended run at once (as it does for a run that ends 30 s or more
    after the driver started: CI's did), so the collapse is in it before the revival starts,
    and readers must see the revived run as unfinished all the same."""
    from gansweep.jobs import progress
    from gansweep.jobs.feedback import REVIVED_ATTR

    monkeypatch.setattr(progress, "SUMMARY_EVERY_S", 0.0)

    spec = parse_spec(tiny_spec(
        tmp_path, name="revhours", trials=1, steps=500_000, report_every=200,
        budget={"steps": 500_000, "hours": 8 / 3600}, fixed={"width": 8, "batch_size": 16},
        early_stop={"collapse": {"threshold": 1.0, "patience": 1, "grace_steps": 0,
                                 "revive": True}}))
    root = submit(spec, **QUIET)

    def history(at=None) -> list[int]:
        lines = ((at or entry) / "metrics.csv").read_text().splitlines()[1:]
        return [int(float(ln.split(",")[0])) for ln in lines]

    def cut_mid_revival() -> bool:
        entries = list((root / sd.TRIALS).glob("*/revived.json"))
        return bool(entries) and history(entries[0].parent)[-1] > 200

    assert more_hours(root, 8, cut_mid_revival), "no hour budget ran out mid-revival"
    [entry] = [p for p in (root / sd.TRIALS).iterdir()]
    assert not results(root)
    assert len(list(entry.glob("result.json.paused-*"))) == 1
    first = history()
    s = collect(root)
    assert s["counts"]["unfinished"] == 1 and s["revived"] == 0 and s["steps_spent"] == first[-1]
    trials = study(root).trials
    assert len(trials) == 1 and not any(REVIVED_ATTR in t.user_attrs for t in trials)
    assert more_hours(root, 6, lambda: history()[-1] > first[-1])
    second = history()
    assert second[-1] > first[-1] and not results(root)  # not collapsed: detection stayed off
    assert second == list(range(200, second[-1] + 1, 200))  # one history, nothing twice
    assert len(list(entry.glob("result.json.paused-*"))) == 1
    assert collect(root)["steps_spent"] == second[-1]
    assert len(study(root).trials) == 1


def test_revive_needs_a_step_budget(tmp_path):
    """Refused by the command, before Ray starts and before a directory is made."""
    import yaml

    raw = tiny_spec(tmp_path / "sweeps", early_stop={"collapse": {"revive": True}})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = run_cli("submit", str(path), check=False)
    assert proc.returncode == 2 and "revive: needs a step budget" in proc.stderr
    assert "add budget: {steps: N}" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "sweeps").exists()
    from gansweep.trainers.errors import ConfigError

    with pytest.raises(ConfigError, match="revive: 'yes'"):
        parse_spec({**raw, "budget": {"steps": 100},
                    "early_stop": {"collapse": {"revive": "yes"}}})
    assert "revive" not in parse_spec({**raw, "early_stop": {}}).early_stop["collapse"]


def test_an_hour_budget_stops_running_trials_which_resume_later(ray_local, tmp_path):
    """Runs far longer than a budget of a few seconds: they are stopped where they stand,
    keep their checkpoints, are neither outcomes nor Optuna results; a resume with a larger
    budget continues each from its checkpoint (no report trained twice)."""
    spec = parse_spec(tiny_spec(tmp_path, name="hours", trials=2, steps=500_000,
                                report_every=200, budget={"hours": 8 / 3600},
                                fixed={"width": 8, "batch_size": 16},
                                early_stop={"collapse": False}))
    said: list[list[str]] = [[]]
    root = submit(spec, log=said[0].append)

    def steps() -> dict[str, int]:
        return {t["key"]: t["step"] for t in collect(root)["trials"]}

    assert more_hours(root, 8, lambda: max(steps().values(), default=0) > 0, said=said)
    # the first driver run in which a run trained cut it (none of 500 000 steps ends in
    # seconds), and its last line says so
    [spent] = [ln for ln in said[-1] if "budget is spent" in ln]
    assert "running trial was stopped" in spent or "running trials were stopped" in spent
    assert f"gansweep resume {root} --budget hours=H" in spent
    s = collect(root)
    assert s["counts"]["unfinished"] == s["runs"] >= 1 and not results(root)
    assert s["budget"]["hours_left"] == 0
    first = steps()
    assert all(v < 500_000 for v in first.values())
    assert {t.state for t in study(root).trials} == {optuna.trial.TrialState.RUNNING}
    text = run_cli("status", str(root)).stdout
    assert "hours spent" in text and f"{s['runs']} running or interrupted" in text
    assert more_hours(root, 8, lambda: len(steps()) == 2 and steps() != first)
    s = collect(root)
    second = {t["key"]: t["step"] for t in s["trials"]}
    assert s["counts"]["unfinished"] == 2 and not results(root)
    assert all(second[k] >= first[k] for k in first) and second != first
    for key in first:  # its history is whole: one row per report, none trained twice
        lines = (root / sd.TRIALS / key / "metrics.csv").read_text().splitlines()[1:]
        steps = [int(float(ln.split(",")[0])) for ln in lines]
        assert steps == list(range(200, second[key] + 1, 200))
    assert {t.state for t in study(root).trials} == {optuna.trial.TrialState.RUNNING}


def _cut_race(root) -> tuple[dict, dict[int, float]] | None:
    """Read here from the trial store, not through the ranking under test: the configuration
    whose run of seed k is unfinished after its seeds 0..k-1 all completed, and the fid of
    each of those (None while no run was cut that way)."""
    store = TrialStore.of(root)
    configs: dict[str, dict] = {}
    runs: dict[str, dict[int, RunResult | None]] = {}
    for key in store.keys():
        record = store.read_json(key, "config.json")
        if record is not None:
            cid = json.dumps(record["config"], sort_keys=True)
            configs[cid] = record["config"]
            runs.setdefault(cid, {})[record["seed"]] = store.result(key)
    for cid, by_seed in runs.items():
        cut = [seed for seed, r in by_seed.items() if r is None]
        ended = sorted(seed for seed, r in by_seed.items() if r is not None)
        if len(cut) == 1 and ended == list(range(cut[0])) and ended \
                and all(by_seed[seed].stop_reason == "completed" for seed in ended):
            return configs[cid], {seed: by_seed[seed].final["fid"] for seed in ended}
    return None


def test_a_race_the_hour_budget_cuts_is_returned_by_the_seeds_it_ended(ray_local, tmp_path):
    """Two configurations: lr_g 1e-3 trains, lr_g 0 leaves the generator where it started (fid
    near 16 against under 1), so the first wins the first seed and races on alone, up to 50
    seeds, until the hour budget cuts one of its runs. The budget is wall-clock, and a run it
    stops may still end during the driver's teardown, so the sweep is resumed with more time
    until a run is cut after the seeds before it ended. Then
    `gansweep status --json` and `gansweep train --from` both return the racing
    configuration judged on the seeds it ended: the cut seed neither hides it (the other
    configuration would be returned) nor counts; and the searcher agrees, its study trial
    still open to race on."""
    from gansweep.jobs.feedback import CID_ATTR

    spec = parse_spec(tiny_spec(
        tmp_path, name="cut", dataset="gauss1d", metric="fid", trials=2, steps=6000,
        report_every=1000, seeds={"count": 50, "top": 1}, budget={"hours": 30 / 3600},
        space={"lr_g": {"choices": [1e-3, 0.0]}}, early_stop={"collapse": False},
        fixed={"width": 8, "batch_size": 32, "code_length": 2, "lr_d": 1e-3, "beta1": 0.5,
               "loss": "nonsaturating", "ema": 0.0, "minibatch_disc": False}))
    root = submit(spec, **QUIET)
    # 6 000 steps, not 3 000: a run the budget stops ends its report interval first, and with
    # three intervals a stopped run often completed, so five driver runs cut none (seen once)
    assert more_hours(root, 20, lambda: _cut_race(root) is not None), \
        "no driver run's hour budget cut a run of the race"
    cut = _cut_race(root)
    config, fids = cut
    assert config["lr_g"] == 1e-3
    status = json.loads(run_cli("status", str(root), "--json").stdout)
    best, seeds = status["best"], sorted(fids)
    assert best["config"] == config and best["seed_list"] == seeds
    assert best["metric"] == pytest.approx(sum(fids.values()) / len(fids))
    assert not best["judged_on_all_seeds"] and status["counts"]["unfinished"] == 1
    [other] = [c for c in status["ranking"] if c["config"] != config]
    assert other["rank"] == 2 and other["seed_list"] == [0] and other["metric"] > 1.0
    out = tmp_path / "again"
    proc = run_cli("train", "--from", str(root), "--steps", "20", "--out", str(out))
    assert (f"over seeds {', '.join(map(str, seeds))} (judged on {len(seeds)} of 50 seeds "
            f"only) (config {best['key']})") in proc.stdout
    assert json.loads((out / "config.json").read_text())["config"] == config
    asked = {t.params["lr_g"]: t.state for t in study(root).trials if CID_ATTR in t.user_attrs}
    assert asked == {1e-3: optuna.trial.TrialState.RUNNING,
                     0.0: optuna.trial.TrialState.COMPLETE}


def test_a_sweep_made_before_seeds_and_budgets_existed_keeps_its_fingerprint(tmp_path):
    """Its frozen spec has no seeds, budget or sampler: opened, it means one seed each, and
    its fingerprint is what the version that made it wrote (the old formula, spelled out)."""
    import hashlib

    import yaml

    old = {"name": "old", "trainer": "gan", "dataset": "ring8", "trials": 3, "steps": 40,
           "report_every": 20, "metric": "modes_captured", "seed": 0, "space": {},
           "fixed": {"width": 16}, "early_stop": {"collapse": {"threshold": 0.25,
                                                               "patience": 3,
                                                               "grace_steps": None},
                                                  "asha": None},
           "resources": {"cpu": 1, "gpu": 0}, "max_concurrent": 2, "max_failures": 2,
           "score_every": None, "storage": str(tmp_path)}
    keep = {k: v for k, v in old.items()
            if k not in ("trials", "max_concurrent", "storage", "resources", "max_failures")}
    fingerprint = hashlib.sha1(json.dumps(keep, sort_keys=True, default=str).encode()
                               ).hexdigest()
    root = tmp_path / "old"
    root.mkdir()
    (root / sd.SPEC).write_text(yaml.safe_dump(old, sort_keys=False))
    (root / sd.META).write_text(json.dumps({"study_name": "old-1", "runs": [],
                                            "spec_fingerprint": fingerprint}))
    spec, _ = sd.open_existing(root)
    assert spec.seeds["count"] == 1 and spec.budget == {"steps": None, "hours": None}
