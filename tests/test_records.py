"""The sweep directory's records (analysis/records.py) read and written through the store
(analysis/layout.py): round trips, records older gansweeps wrote, and the rules read from
sweep.json (the budget in force, the seconds spent)."""
from __future__ import annotations

import json
import math

import pytest

from gansweep.analysis import layout
from gansweep.analysis.layout import (
    CONFIG,
    META,
    RESULT,
    REVIVED,
    TrialStore,
    read_meta,
    study_url,
    write_meta,
)
from gansweep.analysis.records import (
    ONE_SEED,
    DriverRun,
    Rerun,
    Revival,
    RunRecord,
    RunResult,
    SweepMeta,
    seeds_of,
)
from gansweep.analysis.summary import digest

RECORD = {"key": "k1", "trainer": "gan", "dataset": {"name": "digits", "image_size": 16},
          "seed": 2, "steps": 40, "config": {"lr_g": 0.001, "loss": "hinge"},
          "first_trial_id": "t1", "created": 1.5, "node_id": "n1", "device": "cpu",
          "gpu_ids": ["0"]}
FINAL = {"step": 40, "fid": 0.5, "loss_g": "nan", "time_s": 2.0, "collapsed": False}
RESULT_JSON = {"key": "k1", "stop_reason": "completed", "stop_step": 40, "objective": 0.5,
               "final": FINAL, "trial_id": "t1", "time_s": 2.0, "resumed_from_step": 20,
               "node_id": "n1", "finished": 9.0}
META_JSON = {"study_name": "s-1", "spec_fingerprint": "f", "spec_sha1": "h", "created": 1.0,
             "runs": [{"run_id": "r1", "started": 10.0, "seen": 25.0, "name": "run-001"},
                      {"run_id": "r2", "started": 100.0, "name": "rerun-001"}],
             "study_storage": "postgresql://u@db/x", "trials": 12,
             "budget": {"steps": 800, "hours": None},
             "rerun": {"of": "/s/old", "top": 2, "seeds": [3, 4],
                       "configs": [{"key": "k1", "rank": 1, "config": {"lr_g": 0.001}}]}}


def on_disk(obj: dict) -> dict:
    """What a record is once written as strict JSON and read back."""
    return json.loads(json.dumps(layout.json_safe(obj)))


@pytest.mark.parametrize("cls, record", [(RunRecord, RECORD), (RunResult, RESULT_JSON),
                                         (SweepMeta, META_JSON)])
def test_a_record_reads_and_writes_back_what_it_read(cls, record):
    assert cls.from_json(record).to_json() == record
    assert cls.from_json(on_disk(record)) == cls.from_json(record)


def test_a_revived_result_and_a_penalty_objective_round_trip_as_strict_json():
    paused = {"step": 10, "finished": 5.0, "time_s": 0.5, "objective": "-inf",
              "final": {"step": 10, "collapsed": True}}
    r = RunResult.from_json({**RESULT_JSON, "objective": "inf", "revived": paused})
    assert r.objective == math.inf and r.revived == Revival(10, 5.0, 0.5, -math.inf,
                                                            paused["final"])
    assert on_disk(r.to_json()) == {**RESULT_JSON, "objective": "inf", "revived": paused}


def test_keys_this_version_does_not_know_are_kept():
    newer = {**META_JSON, "owner": {"team": "vision"}}
    assert SweepMeta.from_json(newer).to_json() == newer
    assert RunRecord.from_json({**RECORD, "tags": ["a"]}).to_json()["tags"] == ["a"]
    assert RunResult.from_json({**RESULT_JSON, "note": "x"}).extra == {"note": "x"}


def test_an_old_result_without_revived_stop_step_or_reason_reads_as_it_meant():
    old = {"key": "k1", "objective": None, "final": {"step": 30, "fid": 1.0}, "trial_id": "t",
           "time_s": None, "finished": 3.0}
    r = RunResult.from_json(old)
    assert r.revived is None and r.stop_step == 30 and r.stop_reason == layout.FAILED
    assert r.objective is None and r.resumed_from_step is None and r.node_id is None
    written = r.to_json()
    assert "revived" not in written and "node_id" not in written  # absent, as before
    assert written["objective"] is None and written["time_s"] is None  # written, as before


def test_an_old_config_without_where_it_ran_reads_and_writes_without_it():
    old = {k: v for k, v in RECORD.items() if k not in ("node_id", "device", "gpu_ids")}
    record = RunRecord.from_json(old)
    assert (record.node_id, record.device, record.gpu_ids) == (None, None, None)
    assert record.to_json() == old


def test_a_record_without_seed_or_steps_trains_what_its_sweep_does():
    record = RunRecord.from_json({"trainer": "gan", "dataset": "ring8", "config": {}})
    spec = {"trainer": "som", "dataset": "digits", "seed": 7, "steps": 90}
    filled = record.filled_from(spec)
    assert (filled.trainer, filled.dataset, filled.seed, filled.steps) == ("gan", "ring8", 7, 90)
    assert record.filled_from({}) is record


def test_an_old_sweep_json_reads_with_the_meaning_its_absent_keys_had(tmp_path):
    (tmp_path / META).write_text(json.dumps({"study_name": "old-1", "runs": []}))
    meta = read_meta(tmp_path)
    assert (meta.study_storage, meta.spec_sha1, meta.trials, meta.budget, meta.rerun) == (
        None, None, None, None, None)
    assert study_url(tmp_path, meta) == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert meta.trials_in_force(5) == 5 and meta.spent_seconds() == 0.0
    assert meta.budget_in_force({"steps": 400, "hours": None}) == {"steps": 400, "hours": None}
    assert meta.budget_in_force(None) == {"steps": None, "hours": None}  # before budgets
    write_meta(tmp_path, meta)
    assert json.loads((tmp_path / META).read_text()) == {"study_name": "old-1", "runs": []}


def test_a_spec_without_seeds_ran_one_seed():
    assert seeds_of({}) == ONE_SEED == {"count": 1, "top": 3, "statistic": "mean"}
    assert seeds_of({"seeds": {"count": 3, "top": 2, "statistic": "worst"}})["count"] == 3


def test_the_budget_in_force_is_the_specs_as_a_resume_extended_it():
    meta = SweepMeta.from_json(META_JSON)
    assert meta.budget_in_force({"steps": 400, "hours": 2.0}) == {"steps": 800, "hours": None}
    assert SweepMeta(budget={"hours": 3.0}).budget_in_force({"steps": 400, "hours": 2.0}) == \
        {"steps": 400, "hours": 3.0}
    assert meta.trials_in_force(5) == 12


def test_seconds_spent_are_each_driver_run_up_to_when_it_was_last_seen():
    meta = SweepMeta.from_json(META_JSON)
    assert meta.spent_seconds() == 15.0  # the rerun's run keeps no last-seen time: none
    meta.runs.append(DriverRun("r3", started=200.0, seen=230.5))
    assert meta.spent_seconds() == 45.5
    assert DriverRun("r4", started=50.0, seen=40.0).seconds() == 0.0  # a clock set back
    assert DriverRun("r5").seconds() == 0.0


def test_sweep_json_round_trips_through_the_directory(tmp_path):
    meta = SweepMeta(study_name="s-2", spec_fingerprint="f", created=1.0,
                     runs=[DriverRun("r1", 1.0, 2.0, "run-001")],
                     rerun=Rerun(of="/s", top=1, seeds=[5], configs=[]))
    write_meta(tmp_path, meta)
    assert read_meta(tmp_path) == meta
    assert set(json.loads((tmp_path / META).read_text())) == {
        "study_name", "spec_fingerprint", "created", "runs", "rerun"}
    (tmp_path / META).write_text("[]")
    with pytest.raises(ValueError, match="not a JSON object"):
        read_meta(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_meta(tmp_path / "nowhere")


def test_the_store_writes_results_with_the_keys_readers_of_the_files_know(tmp_path):
    store = TrialStore.of(tmp_path)
    store.write_record("k1", RunRecord.from_json(RECORD))
    assert json.loads((tmp_path / "trials" / "k1" / CONFIG).read_text()) == RECORD
    assert store.record("k1") == RunRecord.from_json(RECORD)
    store.write_result("k1", layout.COLLAPSED, 10, -math.inf, {"step": 10, "time_s": 0.5}, "t1",
                       resumed_from_step=0, node_id="n1")
    on_file = json.loads((tmp_path / "trials" / "k1" / RESULT).read_text())
    assert set(on_file) == {"key", "stop_reason", "stop_step", "objective", "final",
                            "trial_id", "time_s", "resumed_from_step", "node_id", "finished"}
    assert on_file["objective"] == "-inf" and on_file["time_s"] == 0.5
    assert store.result("k1").objective == -math.inf
    assert store.record("nothing") is None and store.result("nothing") is None


def test_a_revival_pauses_a_result_and_its_end_keeps_where_it_paused(tmp_path):
    store = TrialStore.of(tmp_path)
    store.write_result("k1", layout.COLLAPSED, 10, -math.inf, {"step": 10, "time_s": 0.5}, "t1")
    paused = store.result("k1")
    store.reopen("k1")
    assert store.result("k1") is None and store.revival("k1") == paused.paused()
    assert json.loads((tmp_path / "trials" / "k1" / REVIVED).read_text())["objective"] == "-inf"
    store.write_result("k1", layout.COMPLETED, 40, 0.9, {"step": 40, "time_s": 2.0}, "t2")
    ended = store.result("k1")
    assert ended.revived == paused.paused() and ended.revived.step == 10
    store.reopen("k1")  # a revived run is never paused again
    assert store.result("k1") == ended


def test_a_digest_is_built_from_the_records():
    result = RunResult.from_json(RESULT_JSON)
    metrics = layout.metrics_csv([{"step": 20, "fid": 0.3}, {"step": 40, "fid": 0.5}]).encode()
    d = digest(RunRecord.from_json(RECORD), result, metrics)
    assert d["record"] == {k: RECORD[k] for k in ("trainer", "dataset", "seed", "steps",
                                                   "config", "created")}
    assert d["result"] == {k: RESULT_JSON[k] for k in ("stop_reason", "stop_step", "objective",
                                                        "time_s", "finished")}
    assert d["best"] == {"fid": 0.3} and d["final"]["fid"] == 0.5
    assert RunResult.from_json(d["result"]).stop_step == 40
