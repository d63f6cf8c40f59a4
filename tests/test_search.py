"""The searcher's decisions on their own (no Ray): which seed runs next, what the study is
told, when a budget stops new runs, when `sampler: auto` leaves TPE. The same class runs
every sweep; tests/test_seeds_and_budget.py drives it through real sweeps."""
from __future__ import annotations

import optuna
import pytest

from gansweep.jobs.budget import Budget
from gansweep.jobs.collapse import CollapseRule
from gansweep.jobs.samplers import make_sampler
from gansweep.jobs.search import SweepSearch
from gansweep.jobs.trial import SEED, TrialControl
from gansweep.search_spaces import make_space

STEPS = 100


def searcher(seeds=None, trials=None, budget=None) -> SweepSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    control = TrialControl(trainer="gan", dataset="ring8", seed=0, steps=STEPS,
                           report_every=50, score_every=None, metric="mixture_score",
                           mode="max", store="/nonexistent", evaluators="/nonexistent",
                           run_id="r", collapse=CollapseRule(enabled=False))
    study = optuna.create_study(direction="maximize",
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
