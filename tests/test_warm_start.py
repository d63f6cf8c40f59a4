"""`warm_start`: a sweep starts from an earlier one's best configurations and its history."""
from __future__ import annotations

import json

import optuna
import yaml

from gansweep.jobs.spec import parse_spec
from gansweep.jobs.status import collect
from gansweep.jobs.submit import resume, submit
from gansweep.jobs.warm_start import WARM_ATTR
from tests.conftest import run_cli, tiny_spec

QUIET = {"log": lambda *_: None}


def _study(root) -> optuna.Study:
    meta = json.loads((root / "sweep.json").read_text())
    return optuna.load_study(study_name=meta["study_name"],
                             storage=f"sqlite:///{root / 'optuna.db'}")


def test_a_warm_started_sweep_runs_the_top_configurations_first_and_learns_from_history(
        ray_local, tmp_path):
    earlier = submit(parse_spec(tiny_spec(tmp_path, name="earlier", trials=4)), **QUIET)
    top2 = [c["config"] for c in collect(earlier)["ranking"][:2]]
    assert all(c["rank"] for c in collect(earlier)["ranking"][:2])
    lines: list[str] = []
    later = submit(parse_spec(tiny_spec(tmp_path, name="later", trials=2, seed=7,
                                        warm_start={"sweeps": [str(earlier)], "top": 2})),
                   log=lines.append)
    s = collect(later)
    assert s["configurations"] == 2  # the history is not one of this sweep's configurations
    assert sorted(json.dumps(c["config"], sort_keys=True) for c in s["ranking"]) == \
        sorted(json.dumps(c, sort_keys=True) for c in top2)
    history = [t for t in _study(later).trials if WARM_ATTR in t.user_attrs]
    assert len(history) == 4 and all(t.user_attrs[WARM_ATTR] == str(earlier) for t in history)
    assert any(f"warm start from {earlier}: 2 of its top configurations queued first, 4 "
               "finished trials given to the sampler as history" in ln for ln in lines), lines
    # applied once: a resume neither queues nor gives them again, and a third configuration
    # is the sampler's own
    resume(later, trials=3, **QUIET)
    assert len([t for t in _study(later).trials if WARM_ATTR in t.user_attrs]) == 4
    assert collect(later)["configurations"] == 3


def test_warm_start_from_what_is_not_a_sweep_of_this_trainer_is_refused(tmp_path):
    (tmp_path / "notes").mkdir()
    for value, message in ((str(tmp_path / "notes"), "is not a gansweep sweep directory"),
                           ({"sweeps": [], "top": 2}, "warm_start: {'sweeps': [], 'top': 2} "
                                                      "is not valid")):
        spec = tmp_path / "s.yaml"
        spec.write_text(yaml.safe_dump(tiny_spec(tmp_path / "sw", warm_start=value)))
        proc = run_cli("submit", str(spec), check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and not (tmp_path / "sw").exists()
