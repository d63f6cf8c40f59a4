"""Seed racing on its own (jobs/racing.py): plain Python fed runs as they start and end, no Ray
and no Optuna. tests/test_search.py drives it through the Tune searcher, and
tests/test_seeds_and_budget.py through real sweeps."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from gansweep.analysis.sweeps import configurations_table
from gansweep.jobs.racing import Racing


def never(steps: int) -> bool:
    return False


def racing(count=3, top=1, statistic="mean", mode="max", steps=100, revive=False) -> Racing:
    return Racing(count, top, statistic, mode, steps, revive=revive)


def run(r: Racing, cid: str, j: int, value: float, reason: str = "completed",
        step: int = 100) -> None:
    race = r.races.get(cid) or r.add(cid, {"lr": cid})
    r.start(race, j)
    r.ended(race, j, reason, value, value, step)


def test_the_best_first_seed_goes_on_and_the_others_race_no_more():
    r = racing(top=1)
    for cid, v in (("a", 0.5), ("b", 0.9), ("c", 0.2)):
        run(r, cid, 0, v)
    over = r.decide(can_grow=False, exhausted=never)
    assert [x.cid for x in over] == ["a", "c"] and all(x.told for x in over)
    assert r.next_queued() == (r.races["b"], 1)
    assert r.start(r.races["b"], 1) == 0 and r.next_queued() is None


def test_first_seeds_wait_for_twice_top_peers_while_more_are_coming():
    r = racing(count=2, top=2)
    run(r, "a", 0, 0.1)
    run(r, "b", 0, 0.2)
    assert r.decide(can_grow=True, exhausted=never) == [] and r.next_queued() is None
    r.add("c", {})  # its first seed in flight: still waiting even though no more may come
    assert r.decide(can_grow=False, exhausted=never) == [] and r.next_queued() is None
    r.start(r.races["c"], 0)
    r.ended(r.races["c"], 0, "failed", None, None, 0)
    over = r.decide(can_grow=False, exhausted=never)
    assert [x.cid for x in over] == ["c"]  # no more first seeds: the two best go on
    assert r.waiting == {"a", "b"}


def test_leaders_kept_room_for_do_not_wait_on_first_seeds_in_flight():
    """`finish_leaders` holds the rest of the budget for the leaders: waiting on a first seed
    still running would leave a slot idle, so they are promoted by what has ended."""
    r = racing(count=2, top=2)
    run(r, "a", 0, 0.1)
    run(r, "b", 0, 0.2)
    r.add("c", {})
    r.start(r.races["c"], 0)
    assert r.decide(can_grow=False, exhausted=never, reserving=True) == []
    assert r.waiting == {"a", "b"} and r.next_queued()[0].cid == "b"


def test_a_stopped_run_ends_its_race_and_never_counts_among_the_peers():
    r = racing(count=2, top=1)
    run(r, "a", 0, 0.99, reason="collapsed")  # the highest value, but stopped
    run(r, "b", 0, 0.1)
    run(r, "c", 0, 0.2)
    over = r.decide(can_grow=False, exhausted=never)
    assert sorted(x.cid for x in over) == ["a", "b"] and r.peers[1] == 2
    assert r.next_queued() == (r.races["c"], 1)


def test_an_interrupted_run_resumes_from_its_step_before_better_ranked_runs():
    r = racing(count=3, top=2)
    for cid, v in (("a", 0.9), ("b", 0.5), ("c", 0.1), ("d", 0.2)):
        run(r, cid, 0, v)
    assert sorted(x.cid for x in r.decide(can_grow=False, exhausted=never)) == ["c", "d"]
    a, b = r.races["a"], r.races["b"]
    assert r.start(a, 1) == 0 and r.start(b, 1) == 0
    r.interrupted(b, 1, step=40)  # the hour budget ran out: not an outcome
    assert 1 not in b.reasons and r.remaining(b, 1) == 60
    r.ended(a, 1, "completed", 0.8, 0.8, 100)
    assert r.decide(can_grow=False, exhausted=never) == [] and a.queued == {2}
    assert r.next_queued() == (b, 1)  # a ranks better, b's checkpoint goes first
    assert r.start(b, 1) == 40


def test_races_end_when_the_budget_can_start_none_of_their_runs():
    r = racing(count=3, top=1)
    for cid, v in (("a", 0.9), ("b", 0.5), ("c", 0.1)):
        run(r, cid, 0, v)
    r.decide(can_grow=False, exhausted=never)
    a = r.races["a"]
    r.start(a, 1)
    r.interrupted(a, 1, step=40)
    run(r, "d", 0, 0.95)  # would win its first seed
    asked = []

    def exhausted(steps: int) -> bool:
        asked.append(steps)
        return steps > 60

    assert r.decide(can_grow=False, exhausted=exhausted) == [] and asked == [60]
    assert r.waiting == {"a", "d"}  # a's 60 steps left still fit: d goes on too
    r2 = racing(count=3, top=1)
    for cid, v in (("a", 0.9), ("b", 0.5), ("c", 0.1)):
        run(r2, cid, 0, v)
    over = r2.decide(can_grow=False, exhausted=lambda steps: True)
    assert sorted(x.cid for x in over) == ["a", "b", "c"] and not r2.waiting


def test_the_end_closes_every_race_that_ran_a_seed_and_has_nothing_running():
    r = racing(count=3, top=1)
    for cid, v in (("a", 0.9), ("b", 0.5), ("c", 0.1)):
        run(r, cid, 0, v)
    r.decide(can_grow=False, exhausted=never)
    r.add("e", {})  # asked, nothing ended
    r.start(r.races["e"], 0)
    assert [x.cid for x in r.end()] == ["a"] and not r.waiting  # a's queued seed dropped


@pytest.mark.parametrize("statistic", ["mean", "worst"])
@pytest.mark.parametrize("mode", ["max", "min"])
def test_what_racing_promotes_is_what_every_reader_ranks_first(statistic, mode):
    """jobs/racing.py and analysis/sweeps.py rank by the one definition (analysis/ranking.py):
    the same runs come out in the same order. A seed without a value (a completed run whose
    metric is NaN) makes a configuration unrankable in both: it could be its worst seed."""
    values = {"a": [0.9, 0.1], "b": [0.6, 0.5], "c": [0.3, 0.7], "d": [0.55, 0.55],
              "e": [0.95, math.nan]}
    r = racing(count=2, top=5, statistic=statistic, mode=mode)
    rows = []
    for cid, vs in values.items():
        for j, v in enumerate(vs):
            run(r, cid, j, v)
            rows.append({"config_key": cid, "key": f"{cid}{j}", "seed": j, "state": "completed",
                         "value": v, "objective": v, "stop_step": 100.0, "time_s": 1.0,
                         "finished": 0.0})
    racer = sorted(r.races.values(), key=lambda race: r.rank_key(race, 2))
    table = configurations_table(pd.DataFrame(rows), {"count": 2, "statistic": statistic}, mode)
    assert [x.cid for x in racer][:4] == list(table[table["rank"].notna()]["config_key"])
    assert r.rank_key(r.races["e"], 2)[0] == math.inf and racer[-1].cid == "e"
    assert len(table) == 5 and math.isnan(table.set_index("config_key").loc["e", "rank"])
    assert r.best[2] == sorted(r.rank_key(x, 2) for x in racer)  # every finite key kept


def test_a_restored_race_goes_on_where_it_was():
    r = racing(count=3, top=1)
    a = r.known("a", {"lr": 1}, number=0, told=False)
    r.stored_result(a, 0, "completed", 0.9, 0.9, 100, revived=False)
    assert r.stored_checkpoint(a, 1, 30)
    b = r.known("b", {"lr": 2}, number=1, told=False)
    r.stored_result(b, 0, "completed", 0.5, 0.5, 100, revived=False)
    old = r.known("c", {"lr": 3}, number=2, told=True)  # its race ended under an old driver
    assert not r.stored_checkpoint(old, 0, 10) and not old.queued
    r.settle()
    assert [x.cid for x in r.decide(can_grow=False, exhausted=never)] == ["b"]
    assert r.next_queued() == (a, 1) and r.start(a, 1) == 30 and r.ended_runs == 2


def test_revival_picks_an_interrupted_revival_then_the_best_pause_that_fits():
    r = racing(count=1, top=1, mode="min", revive=True)  # lower wins
    run(r, "a", 0, 3.0, reason="collapsed", step=50)
    run(r, "b", 0, 1.0, reason="collapsed", step=20)
    run(r, "c", 0, 0.5, reason="collapsed", step=100)  # at its last report: nothing left
    assert r.paused == {("a", 0), ("b", 0)}
    assert r.next_revival(lambda steps: steps <= 60) == (r.races["a"], 0)  # b's 80 don't fit
    assert r.next_revival(lambda steps: True) == (r.races["b"], 0)
    a = r.races["a"]
    assert r.start(a, 0, revival=True) == 50 and ("a", 0) not in r.paused
    r.interrupted(a, 0, step=70, revival=True)
    assert r.next_revival(lambda steps: True) == (a, 0) and r.remaining(a, 0) == 30
    r.start(a, 0, revival=True)
    r.revival_ended(a, 0, "completed", 2.0, 2.0)
    assert a.reasons[0] == "completed" and r.revived == 1 and not a.busy()
    assert not racing(revive=False).next_revival(lambda steps: True)
