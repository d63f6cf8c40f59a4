"""Real sweeps on a real local Ray: the sweep directory is a normal Ray Tune experiment and a
normal Optuna study, status reads it, and an existing sweep is never overwritten."""
from __future__ import annotations

import json

import optuna
import pytest

from gansweep.jobs import sweep_dir as sd
from gansweep.jobs.spec import parse_spec
from gansweep.jobs.status import collect
from gansweep.jobs.submit import resume, submit
from gansweep.trainers.errors import ConfigError
from tests.conftest import run_cli, tiny_spec


@pytest.fixture(scope="module")
def finished_sweep(ray_local, tmp_path_factory):
    storage = tmp_path_factory.mktemp("sweeps")
    spec = parse_spec(tiny_spec(storage))
    root = submit(spec, log=lambda *_: None)
    return spec, root


def results(root):
    out = {}
    for p in sorted((root / sd.TRIALS).glob("*/result.json")):
        out[p.parent.name] = json.loads(p.read_text())
    return out


def test_sweep_runs_every_trial_to_an_end(finished_sweep):
    spec, root = finished_sweep
    s = collect(root)
    assert s["configurations"] == spec.trials
    assert s["counts"]["unfinished"] == 0
    for key, r in results(root).items():
        assert r["stop_reason"] in ("completed", "collapsed", "diverged")
        assert r["final"]["step"] == r["stop_step"] > 0
        assert (root / sd.TRIALS / key / "samples.npy").is_file()
        lines = (root / sd.TRIALS / key / "metrics.csv").read_text().splitlines()
        assert len(lines) - 1 == r["stop_step"] // spec.report_every


def test_optuna_study_loads_back(finished_sweep):
    spec, root = finished_sweep
    meta = json.loads((root / sd.META).read_text())
    study = optuna.load_study(study_name=meta["study_name"],
                              storage=f"sqlite:///{root / sd.OPTUNA_DB}")
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == spec.trials
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert all("lr_g" in t.params and "width" not in t.params for t in done)  # width is fixed


def test_experiment_reads_back_with_ray_experiment_analysis(finished_sweep):
    from ray.tune import ExperimentAnalysis

    spec, root = finished_sweep
    ea = ExperimentAnalysis(str(root / sd.TUNE / "run-001"))
    assert len(ea.trials) == spec.trials
    df = ea.dataframe()
    assert {"objective", "modes_captured", "step", "key"} <= set(df.columns)
    assert set(df["key"]) == set(results(root))


def test_status_cli_text_and_json(finished_sweep):
    spec, root = finished_sweep
    text = run_cli("status", str(root)).stdout
    assert f"configurations: {spec.trials} of {spec.trials}" in text
    assert "best modes_captured" in text
    s = json.loads(run_cli("status", str(root), "--json").stdout)
    assert s["configurations"] == spec.trials and s["best"]["key"] in results(root)


def test_submitting_into_an_existing_sweep_is_refused(finished_sweep):
    spec, root = finished_sweep
    before = results(root)
    with pytest.raises(ConfigError, match="gansweep resume"):
        submit(spec, log=lambda *_: None)
    assert results(root) == before


def test_resume_extends_a_finished_sweep_without_rerunning(finished_sweep):
    spec, root = finished_sweep
    before = results(root)
    resume(root, trials=spec.trials + 1, log=lambda *_: None)
    after = results(root)
    assert len(after) == spec.trials + 1
    for key, r in before.items():  # nothing that had finished ran again
        assert after[key] == r
    assert collect(root)["configurations"] == spec.trials + 1


def test_a_second_family_sweeps_too(ray_local, tmp_path):
    spec = parse_spec({"name": "som", "trainer": "som", "dataset": "digits", "trials": 2,
                       "steps": 4, "report_every": 2, "metric": "quantization_error",
                       "fixed": {"rows": 4, "cols": 4}, "storage": str(tmp_path)})
    root = submit(spec, log=lambda *_: None)
    rs = results(root)
    # the default judges configurations on 3 seeds: with 2 configurations, too few to race,
    # both run on all three
    s = collect(root)
    assert s["configurations"] == 2 and len(rs) == s["runs"] == 6
    assert sorted(c["seed_list"] for c in s["ranking"]) == [[0, 1, 2], [0, 1, 2]]
    for key, r in rs.items():
        assert r["final"]["quantization_error"] > 0
        assert (root / sd.TRIALS / key / "weights.npy").is_file()


def test_the_summary_holds_every_ended_run_and_reads_as_the_files_do(finished_sweep, tmp_path):
    """summary.json (one read for a reader of a large sweep) gives the same table as reading
    every run's own files; a run missing from it is read from its files."""
    import shutil

    from gansweep.analysis.sweeps import load_sweep, read_summary

    spec, root = finished_sweep
    summary = read_summary(root)
    assert set(summary) == set(results(root))
    copy = tmp_path / root.name
    shutil.copytree(root, copy)
    with_summary = load_sweep(copy).trials.drop(columns=["time_s"]).sort_values("key")
    (copy / "summary.json").unlink()
    without = load_sweep(copy).trials.drop(columns=["time_s"]).sort_values("key")
    assert with_summary.reset_index(drop=True).equals(without.reset_index(drop=True))
    partial = {k: v for k, v in list(summary.items())[1:]}
    (copy / "summary.json").write_text(json.dumps({"version": 2, "runs": partial}))
    assert len(load_sweep(copy).trials) == len(summary)


def test_a_driver_run_continues_in_a_fresh_tune_experiment_every_few_trials(
        ray_local, tmp_path, monkeypatch):
    """Ray Tune's per-trial cost grows with an experiment's trials: a long driver run starts a
    fresh experiment every TRIALS_PER_EXPERIMENT trials, rebuilding its searcher as a resume
    does; nothing is lost or run twice, and the races go on across the boundary."""
    from gansweep.jobs import submit as submit_mod

    monkeypatch.setattr(submit_mod, "TRIALS_PER_EXPERIMENT", 3)
    said: list[str] = []
    spec = parse_spec(tiny_spec(tmp_path, trials=4, seeds={"count": 2, "top": 1},
                                early_stop={"collapse": False}))
    root = submit(spec, log=said.append)
    experiments = sorted(p.name for p in (root / sd.TUNE).iterdir() if p.is_dir())
    assert experiments[:2] == ["run-001", "run-001-2"], experiments
    assert any("continuing in a fresh one" in line for line in said)
    s = collect(root)
    assert s["configurations"] == 4 and s["counts"]["unfinished"] == 0
    keys = [t["key"] for t in s["trials"]]
    assert len(keys) == len(set(keys)) and len(keys) > 4  # some configuration raced on
    runs = json.loads((root / sd.META).read_text())["runs"]
    assert len(runs) == 1  # one driver run


def test_a_sweep_made_before_the_namespace_change_resumes_and_reports(ray_local, tmp_path):
    """tests/data/sweep-before-namespace was made by gansweep before its layers moved under
    `gansweep.` (and elsewhere: its spec names another storage): extended by a configuration,
    its finished runs kept as they were, reported."""
    import shutil

    from gansweep.analysis.report import write_report
    from tests.conftest import ROOT

    root = tmp_path / "old-tiny"
    shutil.copytree(ROOT / "tests" / "data" / "sweep-before-namespace", root)
    before = results(root)
    assert len(before) == 3
    resume(root, trials=3, log=lambda *_: None)
    after = results(root)
    assert {k: after[k] for k in before} == before  # nothing trained again
    s = collect(root)
    assert s["configurations"] == 3 and s["counts"]["unfinished"] == 0
    assert s["best"] is not None
    assert write_report([root], tmp_path / "report").is_file()


def test_a_sweep_scores_in_the_groups_own_features(ray_local, tmp_path):
    spec = parse_spec(tiny_spec(tmp_path, name="feats", trials=1,
                                features="tests.index_features:features"))
    assert spec.features == "tests.index_features:features"
    root = submit(spec, log=lambda *_: None)
    (r,) = results(root).values()
    assert r["final"]["fid"] < 1e-6 and r["final"]["precision"] == 1.0
    builtin = parse_spec(tiny_spec(tmp_path, name="builtin", trials=1))
    (b,) = results(submit(builtin, log=lambda *_: None)).values()
    assert b["final"]["fid"] > 1e-3  # the same run, scored in raw coordinates


def test_features_the_driver_cannot_use_are_refused_before_anything_starts(tmp_path):
    raw = tiny_spec(tmp_path / "store", features="tests.index_features:nothing_here")
    proc = run_cli("submit", str(_write(tmp_path / "s.yaml", raw)), check=False)
    assert proc.returncode == 2 and "features: module tests.index_features has no" \
        in proc.stderr, proc.stderr
    assert not (tmp_path / "store").exists()


def test_a_warm_started_sweep_runs_the_top_configurations_first_and_learns_from_history(
        ray_local, tmp_path):
    from gansweep.jobs import warm_start
    from gansweep.jobs.warm_start import WARM_ATTR

    earlier = submit(parse_spec(tiny_spec(tmp_path, name="earlier", trials=4)),
                     log=lambda *_: None)
    top2 = [c["config"] for c in collect(earlier)["ranking"][:2]]
    assert all(c["rank"] for c in collect(earlier)["ranking"][:2])
    lines: list[str] = []
    spec = parse_spec(tiny_spec(tmp_path, name="later", trials=2, seed=7,
                                warm_start={"sweeps": [str(earlier)], "top": 2}))
    later = submit(spec, log=lines.append)
    s = collect(later)
    assert s["configurations"] == 2  # the history is not one of this sweep's configurations
    assert sorted(json.dumps(c["config"], sort_keys=True) for c in s["ranking"]) == \
        sorted(json.dumps(c, sort_keys=True) for c in top2)
    meta = json.loads((later / "sweep.json").read_text())
    study = optuna.load_study(study_name=meta["study_name"],
                              storage=f"sqlite:///{later / 'optuna.db'}")
    history = [t for t in study.trials if WARM_ATTR in t.user_attrs]
    assert len(history) == 4 and all(t.user_attrs[WARM_ATTR] == str(earlier) for t in history)
    assert any(f"warm start from {earlier}: 2 of its top configurations queued first, 4 "
               "finished trials given to the sampler as history" in ln for ln in lines), lines
    # applied once: a driver that starts again (a resume) neither queues nor gives them again
    warm_start.apply(study, spec.warm_start, spec.to_dict()["metric"], lines.append)
    assert len(study.trials) == 2 + 4


def _write(path, raw):
    import yaml

    path.write_text(yaml.safe_dump(raw))
    return path
