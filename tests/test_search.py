"""The searcher's decisions on their own (no Ray): which seed runs next, what the study is
told, when a budget stops new runs, when `sampler: auto` leaves TPE. The same class runs
every sweep; tests/test_seeds_and_budget.py drives it through real sweeps."""
from __future__ import annotations

import optuna
import pytest

from gansweep.analysis import layout
from gansweep.jobs.budget import Budget, BudgetStopper
from gansweep.jobs.collapse import CollapseRule
from gansweep.jobs.samplers import make_sampler
from gansweep.jobs.search import SweepSearch
from gansweep.jobs.trial import SEED, TrialControl
from gansweep.search_spaces import make_space

STEPS = 100


def searcher(seeds=None, trials=None, budget=None, store="/nonexistent",
             storage=None) -> SweepSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    control = TrialControl(trainer="gan", dataset="ring8", seed=0, steps=STEPS,
                           report_every=50, score_every=None, metric="mixture_score",
                           mode="max", store=store, evaluators="/nonexistent",
                           run_id="r", collapse=CollapseRule(enabled=False))
    study = optuna.create_study(direction="maximize", storage=storage, study_name="s",
                                load_if_exists=True,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    return SweepSearch(control, study, make_space("gan", {}, {"width": 8}, STEPS),
                       seeds or {"count": 3, "top": 1, "statistic": "mean"}, trials,
                       budget or Budget(None, None, 0, 0.0), log=lambda *_: None)


def finish(s: SweepSearch, tid: str, value: float, reason: str = "completed") -> None:
    s.on_trial_complete(tid, {"stop_reason": reason, "mixture_score": value,
                              "objective": value, "step": STEPS})


def test_a_configuration_races_on_only_while_it_ranks_in_the_top():
    s = searcher(trials=3)
    first = [s.suggest(f"t{i}") for i in range(3)]
    assert [c[SEED] for c in first] == [0, 0, 0]
    for i, v in enumerate((0.5, 0.9, 0.2)):
        finish(s, f"t{i}", v)
    nxt = s.suggest("t3")  # the 0.9 configuration, on its second seed
    assert nxt[SEED] == 1 and {k: v for k, v in nxt.items() if k != SEED} == \
        {k: v for k, v in first[1].items() if k != SEED}
    finish(s, "t3", 0.8)
    assert s.suggest("t4")[SEED] == 2
    finish(s, "t4", 0.7)
    assert s.suggest("t5") == "FINISHED"
    told = {t.number: (t.state.name, t.value) for t in s.study.trials}
    assert told == {0: ("COMPLETE", 0.5), 1: ("COMPLETE", pytest.approx(0.8)),
                    2: ("COMPLETE", 0.2)}  # the racer: its mean over 3 seeds


def test_the_first_seeds_wait_for_enough_peers_before_anyone_is_promoted():
    s = searcher(seeds={"count": 2, "top": 2, "statistic": "mean"})  # needs 4 peers
    for i in range(2):
        s.suggest(f"t{i}")
    finish(s, "t0", 0.1)
    finish(s, "t1", 0.2)
    assert all(s.suggest(f"n{i}")[SEED] == 0 for i in range(2))  # new ones, not promotions
    finish(s, "n0", 0.9)
    finish(s, "n1", 0.8)
    promoted = [s.suggest(f"p{i}") for i in range(2)]
    assert [p[SEED] for p in promoted] == [1, 1]


def test_a_stopped_run_ends_its_race_and_asha_stops_are_pruned():
    s = searcher(trials=2, seeds={"count": 2, "top": 2, "statistic": "mean"})
    s.suggest("a")
    s.suggest("b")
    s.on_trial_complete("a", {"stop_reason": "running", "objective": 0.3, "step": 50})
    finish(s, "b", 0.0, reason="collapsed")
    assert s.suggest("c") == "FINISHED"
    states = sorted(t.state.name for t in s.study.trials)
    assert states == ["COMPLETE", "PRUNED"]


def test_a_step_budget_starts_only_runs_that_fit_and_stops_at_what_is_left():
    s = searcher(seeds={"count": 1, "top": 1, "statistic": "mean"},
                 budget=Budget(2 * STEPS + 50, None, 0, 0.0))
    assert s.suggest("a") and s.suggest("b")
    assert s.suggest("c") is None  # a third would not fit beside the two running
    s.on_trial_complete("a", {"stop_reason": "collapsed", "objective": 0.0, "step": 50})
    assert s.suggest("c")  # the collapsed run gave 50 steps back: 50 + 100 + 100 fit
    finish(s, "b", 0.5)
    finish(s, "c", 0.5)
    assert s.suggest("d") == "FINISHED" and s.budget.spent_steps == 250


@pytest.mark.parametrize("finish_leaders", [False, True])
def test_finish_leaders_keeps_the_last_steps_for_the_leaders_seeds(finish_leaders):
    """450 budget steps, two runs at a time: once A leads after its first seed, a new
    configuration beside A's second seed would leave no room for A's third. Without the lever
    it starts and A is judged on two seeds; with it the room is kept and A runs all three."""
    s = searcher(budget=Budget(450, None, 0, 0.0, finish_leaders=finish_leaders))
    a, b = s.suggest("a"), s.suggest("b")
    finish(s, "a", 0.9)
    finish(s, "b", 0.5)
    assert s.suggest("c")[SEED] == 1  # A, promoted, on its second seed
    d = s.suggest("d")
    if finish_leaders:
        assert d is None  # 200 spent + 100 running + A's last 100 + a new 100 > 450
    else:
        assert d[SEED] == 0 and d["lr_g"] not in (a["lr_g"], b["lr_g"])  # a new configuration
        finish(s, "d", 0.1)
    finish(s, "c", 0.8)
    third = s.suggest("e")
    if finish_leaders:
        assert third[SEED] == 2 and third["lr_g"] == a["lr_g"]
        finish(s, "e", 0.7)
    else:
        assert third == "FINISHED"  # 400 spent: A's third seed no longer fits
    assert s.suggest("f") == "FINISHED"
    a_runs = sum(1 for r in s.racing.races.values() if r.params["lr_g"] == a["lr_g"]
                 for _ in r.reasons)
    assert a_runs == (3 if finish_leaders else 2)


def test_finish_leaders_in_hours_reserves_a_leaders_seeds_one_after_another():
    """At 1 step/s on 2 slots, a leader's two remaining 100-step seeds take 200 s however many
    slots there are; a new run fits beside them only while more than that is left. A leader
    whose own runs were twice as slow needs twice that."""
    for left, room in ((250, True), (150, False)):
        b = Budget(None, 1.0, 0, 3600.0 - left, finish_leaders=True)
        b.slots = 2  # as two runs placed at once leave it
        b.observe_run(100, 100.0, cid="a")
        assert b.room_for_new(100, {"a": [100, 100]}) is room
        assert b.room_for_new(100, {}) is True  # no leader yet: nothing to keep
    b = Budget(None, 1.0, 0, 3600.0 - 300, finish_leaders=True)
    for n, (cid, seconds) in enumerate((("fast", 50.0), ("fast", 100.0), ("slow", 200.0))):
        b.place(f"t{n}", 0, 100)
        b.place(f"u{n}", 0, 100)  # beside another: 2 slots
        b.release(f"u{n}", 0)
        b.reported(f"t{n}", 100)
        b.release(f"t{n}", 100, ran_s=seconds, cid=cid)
    assert b.room_for_new(100, {"fast": [100, 100]}) is True  # 200 s at its 1 step/s
    assert b.room_for_new(100, {"slow": [100, 100]}) is False  # 400 s at its 0.5
    assert Budget(None, 1.0, 0, 3590.0).room_for_new(100, {"a": [100]}) is True  # lever off


def test_the_hour_budget_counts_only_the_runs_it_cut_short():
    """Tune stops the running trials when the hours run out without ending them in the
    searcher: the runs still held then were cut unless their last report was their last
    planned step (it came as the budget expired: the run ended on its own)."""
    b = Budget(None, 1.0, 0, 3600.0)
    b.place("done", 0, 100)
    b.place("cut", 40, 100)  # resumed at step 40
    b.place("silent", 0, 100)  # placed, no report yet
    b.place("before", 0, 100)
    b.reported("before", 30)
    b.release("before", 30)  # ended before the hours ran out: not held
    b.reported("done", 100)
    b.reported("cut", 60)
    assert BudgetStopper(b).stop_all() and b.expired
    assert b.cut_short() == 2
    assert b.expiry_text().startswith("2 running trials were stopped")
    b.release("silent", None)
    assert b.expiry_text().startswith("1 running trial was stopped and keeps its checkpoint")
    b.release("cut", None)
    assert b.expiry_text().startswith("no running trial was cut short")  # "done" ended


@pytest.mark.parametrize("left, started", [(250.0, True), (150.0, False)])
def test_finish_leaders_starts_no_run_the_hour_budget_would_cut(left, started):
    """Both first runs trained 100 steps in 200 s, so A's second seed needs 200 s. With 250 s
    left it starts; with 150 s the deadline would stop it unjudged, so nothing starts, the
    search ends now instead of at the deadline, and the driver says why."""
    s = searcher(budget=Budget(None, 1.0, 0, 3600.0 - left, finish_leaders=True))
    said = []
    s.log = said.append
    a = s.suggest("a")
    s.suggest("b")
    for tid, value in (("a", 0.9), ("b", 0.5)):
        s.placed[tid] -= 200.0
        finish(s, tid, value)
    nxt = s.suggest("c")
    if started:
        assert nxt[SEED] == 1 and nxt["lr_g"] == a["lr_g"]
        assert not any("would need" in line for line in said)
    else:
        assert nxt == "FINISHED" and "would need about 200 s and 150 s are left" in said[-1]
        assert sum(len(r.reasons) for r in s.racing.races.values()) == 2
    plain = searcher(budget=Budget(None, 1.0, 0, 3600.0 - 150.0))  # lever off: it starts
    plain.suggest("a"), plain.suggest("b")
    for tid, value in (("a", 0.9), ("b", 0.5)):
        plain.placed[tid] -= 200.0
        finish(plain, tid, value)
    assert plain.suggest("c")[SEED] == 1


def test_a_new_driver_goes_on_with_the_races_the_trial_store_and_the_study_hold(tmp_path):
    """Driver one asks three configurations and dies: two first seeds ended, the third was
    interrupted at step 50 (its metrics.csv, torn mid-row, says so). Driver two, from the
    same SQLite study and trial store, resumes the third from step 50 before anything new,
    reports its first seed's intermediate values to the study trial driver one left open,
    and runs the best of the three on its second seed first."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    store = layout.TrialStore(str(tmp_path / "trials"))
    one = searcher(trials=3, store=store.root, storage=storage)
    configs = [one.suggest(f"t{i}") for i in range(3)]
    for config, value in zip(configs[:2], (0.5, 0.2)):
        key = one.control.key(config)
        store.write_record(key, one.control.record(config, "t"))
        store.write_result(key, "completed", STEPS, value, {"step": STEPS,
                                                             "mixture_score": value}, "t")
    key = one.control.key(configs[2])
    store.write_record(key, one.control.record(configs[2], "t"))
    store.write(key, layout.METRICS, (layout.metrics_csv(
        [{"step": 50, "mixture_score": 0.9}]) + "10").encode())
    two = searcher(trials=3, store=store.root, storage=storage,
                   budget=Budget(10 * STEPS, None, 0, 0.0))
    assert two.restore(store) == 1 and two.budget.spent_steps == 2 * STEPS + 50
    resumed = two.suggest("r0")  # the configuration as the store holds it (defaults filled)
    assert two.control.key(resumed) == key and two.budget.committed == {"r0": STEPS - 50}
    two.on_trial_result("r0", {"objective": 0.8, "step": STEPS, "mixture_score": 0.8})
    two.on_trial_complete("r0", {"stop_reason": "completed", "mixture_score": 0.8,
                                 "objective": 0.8, "step": STEPS})
    assert two.study.trials[2].intermediate_values == {STEPS: 0.8}
    assert two.suggest("r1") == {**resumed, SEED: 1}  # 0.8 beat 0.5 and 0.2
    # 0.5 went on too, when it led the two first seeds that had ended; 0.2 lost
    assert [t.state.name for t in two.study.trials] == ["RUNNING", "COMPLETE", "RUNNING"]
    assert two.budget.spent_steps == 3 * STEPS


def test_auto_leaves_tpe_once_its_suggestions_cost_a_twentieth_of_a_run():
    sampler = make_sampler("auto", 0)
    assert sampler.current is sampler.tpe
    for _ in range(19):
        assert sampler.observe(suggest_s=0.1, run_s=1.0) is None  # too few runs to judge
    assert "random search from here" in sampler.observe(suggest_s=0.1, run_s=1.0)
    assert sampler.current is sampler.random
    cheap = make_sampler("auto", 0)
    for _ in range(50):
        cheap.observe(suggest_s=0.01, run_s=1.0)
    assert cheap.current is cheap.tpe


def test_every_sampler_a_spec_may_name_suggests_from_the_gan_space():
    # cmaes and gp need packages of their own (cmaes; scipy and torch): a spec that names
    # one must not fail at its first suggestion on a cluster.
    import optuna

    from gansweep.jobs.spec import SAMPLERS
    from gansweep.search_spaces import make_space

    space = make_space("gan", {}, {"width": 8}, 2)
    for name in SAMPLERS:
        study = optuna.create_study(sampler=make_sampler(name, 0), direction="maximize")
        for i in range(12):  # past the samplers' random start-up trials
            t = study.ask()
            study.tell(t, -abs(space(t)["lr_g"] - 1e-3) + i * 1e-9)
        assert len(study.trials) == 12, name
