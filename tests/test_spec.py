"""Sweep spec validation: every bad spec gets one message naming the key, before Ray starts."""
from __future__ import annotations

import time

import pytest
import yaml

from gansweep.jobs.spec import load_spec, parse_spec
from gansweep.search_spaces import make_space
from gansweep.trainers.errors import ConfigError
from tests.conftest import ROOT, run_cli

GOOD = {"name": "t", "trainer": "gan", "dataset": "ring8", "trials": 2, "steps": 20,
        "report_every": 10, "metric": "modes_captured"}


def spec_with(**changes):
    raw = {**GOOD, **changes}
    return {k: v for k, v in raw.items() if v is not None}


@pytest.mark.parametrize("changes, fragment", [
    ({"colour": "red"}, "unknown key colour"),
    ({"trainer": "vae"}, "trainer: unknown trainer 'vae'"),
    ({"metric": "accuracy"}, "metric: unknown metric 'accuracy'"),
    ({"metric": "quantization_error"}, "metric: quantization_error is a SOM metric"),
    ({"dataset": "cifar"}, "dataset: unknown dataset 'cifar'"),
    ({"dataset": "digits", "trainer": "dcgan", "metric": "modes_captured"},
     "needs a mixture dataset"),
    ({"space": {"n_critic": {"low": 1, "high": 5}}}, "space.n_critic: trainer gan does not "
                                                     "take n_critic"),
    ({"space": {"lr_g": {"low": 1e-2, "high": 1e-4}}}, "space.lr_g: low (0.01) is greater"),
    ({"space": {"lr_g": {"low": 0.0, "high": 1e-3, "log": True}}}, "log scale needs low > 0"),
    ({"space": {"batch_size": {"choices": []}}}, "space.batch_size.choices: give a non-empty"),
    ({"space": {"loss": {"low": 1, "high": 2}}}, "search it with choices"),
    ({"space": {"loss": {"choices": ["hinge"]}}}, "space.loss: loss='hinge' is not valid"),
    ({"fixed": {"clip_value": 0.1}}, "fixed.clip_value: trainer gan does not take clip_value"),
    ({"fixed": {"lr_g": 1e-3}, "space": {"lr_g": {"low": 1e-4, "high": 1e-3}}},
     "also in fixed"),
    ({"trials": 0}, "trials: 0 is not valid"),
    ({"steps": "many"}, "steps: 'many' is not valid"),
    ({"score_every": 15}, "score_every: 15 is not a multiple of report_every"),
    ({"resources": {"gpu": -1}}, "resources.gpu"),
    ({"resources": {"tpu": 1}}, "resources: write {cpu: 1, gpu: 0}"),
    ({"early_stop": {"collapse": {"threshold": 3}}}, "early_stop.collapse.threshold"),
    ({"early_stop": {"collapse": {"trend": "yes"}}}, "early_stop.collapse.trend"),
    ({"early_stop": {"collapse": {"slope": 1}}}, "unknown key slope"),
    ({"early_stop": {"asha": {"reduction_factor": 1}}}, "early_stop.asha.reduction_factor"),
    ({"name": "../escape"}, "name: '../escape' is not valid"),
    ({"trials": None}, "give trials (how many configurations) or budget"),
    ({"budget": {"steps": 0}}, "budget.steps: 0 is not valid"),
    ({"budget": {"hours": "2"}}, "budget.hours: '2' is not valid"),
    ({"budget": {"epochs": 5}}, "write budget: {steps: 400000}"),
    ({"seeds": 0}, "seeds.count: 0 is not valid"),
    ({"seeds": {"count": 3, "statistic": "median"}}, "seeds.statistic: 'median' is not valid"),
    ({"seeds": {"runs": 3}}, "seeds: {'runs': 3} is not valid"),
    ({"sampler": "grid"}, "sampler: 'grid' is not valid"),
    ({"space": {"lr_g": {"low": float("nan"), "high": 1e-3}}}, "space.lr_g.low: lr_g=nan"),
    ({"space": {"lr_d": {"low": 1e-4, "high": float("inf")}}}, "space.lr_d.high: lr_d=inf"),
    ({"fixed": {"lr_g": float("nan")}}, "fixed.lr_g: lr_g=nan is not valid"),
    ({"fixed": {"lr_g": float("-inf")}}, "fixed.lr_g: lr_g=-inf is not valid"),
    ({"seed": 2**32}, "seed: 4294967296 is too large"),
    # fits numpy today, but not once resumes have added 1000 per driver run
    ({"seed": 2**32 - 1 - 1000}, "seed: 4294966295 is too large"),
    ({"budget": {"steps": 19}}, "budget.steps: 19 is less than one run (20 steps)"),
    ({"budget": {"hours": float("inf")}}, "budget.hours: inf is not valid"),
    ({"resources": {"gpu": float("inf")}}, "resources.gpu: inf is not valid"),
    ({"resources": {"cpu": float("nan")}}, "resources.cpu: nan is not valid"),
    ({"name": "ring8\nx"}, "name: 'ring8\\nx' is not valid"),
    ({"name": "x" * 201}, "at most 200 bytes"),
])
def test_bad_spec_is_refused_with_the_key(changes, fragment):
    with pytest.raises(ConfigError) as err:
        parse_spec(spec_with(**changes))
    assert fragment in str(err.value)


def test_seed_and_budget_at_their_limits_are_accepted():
    from gansweep.jobs.spec import RESUMES, SEED_LIMIT

    top = SEED_LIMIT - 1000 * RESUMES - 3
    spec = parse_spec(spec_with(seed=top, seeds=3, budget={"steps": 20}))
    # the last resume the bound allows still seeds numpy's sampler within its range
    assert spec.seed + 1000 * (RESUMES - 1) + spec.seeds["count"] <= SEED_LIMIT
    with pytest.raises(ConfigError, match="^seed: "):
        parse_spec(spec_with(seed=top + 1, seeds=3))


def test_frozen_spec_parses_back_to_itself(tmp_path):
    spec = parse_spec(spec_with(space={"lr_g": {"low": 1e-5, "high": 1e-3, "log": True}},
                                early_stop={"collapse": {"threshold": 0.3, "patience": 2},
                                            "asha": {"grace_steps": 10}},
                                storage=str(tmp_path)))
    again = parse_spec(yaml.safe_load(yaml.safe_dump(spec.to_dict())))
    assert again == spec and again.fingerprint() == spec.fingerprint()


def test_every_shipped_spec_is_valid():
    specs = sorted((ROOT / "jobs" / "specs").glob("*.yaml"))
    trainers = {load_spec(p).trainer for p in specs}
    assert trainers == {"dcgan", "wgan", "wgan-gp", "gan", "som"}


@pytest.mark.parametrize("trainer", ["dcgan", "wgan", "wgan-gp", "gan", "som"])
def test_default_space_suggests_valid_configs(trainer):
    """Each family's define-by-run space yields configurations its trainer accepts;
    conditional parameters appear only when their condition holds."""
    import optuna

    from gansweep.trainers.hparams import resolve
    from gansweep.trainers.registry import get_trainer

    cls = get_trainer(trainer)
    space = make_space(trainer, {}, {}, 100)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        params = space(study.ask())
        resolve(cls.HPARAMS, params, trainer)
        if trainer == "dcgan":
            assert "n_critic" not in params
        if trainer == "gan" and not params["minibatch_disc"]:
            assert "kernels" not in params


def test_overrides_and_fixed_apply_on_top():
    import optuna

    space = make_space("gan", {"lr_g": {"low": 1e-3, "high": 2e-3, "log": False},
                               "width": {"choices": [16]}}, {"code_length": 8}, 100)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(5):
        params = space(study.ask())
        assert 1e-3 <= params["lr_g"] <= 2e-3
        assert params["width"] == 16 and params["code_length"] == 8


def test_cli_refuses_bad_spec_before_ray_starts(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec_with(storage=str(tmp_path / "sw"),
                                            space={"lr_g": {"low": 1, "high": 0}})))
    t0 = time.monotonic()
    proc = run_cli("submit", str(bad), check=False)
    assert proc.returncode == 2
    assert "space.lr_g" in proc.stderr and "greater" in proc.stderr
    assert "ray" not in proc.stdout.lower()  # no "starting a local Ray" line
    assert not (tmp_path / "sw").exists()
    assert time.monotonic() - t0 < 60


def test_missing_spec_file(tmp_path):
    proc = run_cli("submit", str(tmp_path / "nope.yaml"), check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_sets_override_the_file_as_dotted_yaml_values(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec_with(space={"lr_g": {"low": 1e-4, "high": 2e-4}})))
    spec = load_spec(path, sets=["steps=30", "space.lr_g.high=1e-3",
                                 "space.lr_d={low: 1e-5, high: 1e-4}", "fixed={width: 8}",
                                 "seeds.count=2", "name=t-long"])
    assert spec.steps == 30 and spec.name == "t-long" and spec.fixed == {"width": 8}
    assert spec.space["lr_g"]["high"] == 1e-3 and spec.space["lr_g"]["low"] == 1e-4
    assert spec.space["lr_d"]["low"] == 1e-5 and spec.seeds["count"] == 2
    # a spec file's 1e-4 is a number (YAML 1.1, PyYAML's default, reads it as a string)
    path.write_text("name: t\ntrainer: gan\ndataset: ring8\ntrials: 2\nsteps: 20\n"
                    "space: {lr_g: {low: 1e-5, high: 2E-4}}\n")
    assert load_spec(path).space["lr_g"]["low"] == 1e-5
    # what the sweep directory freezes is the spec with its overrides
    assert parse_spec(spec.to_dict()).fingerprint() == spec.fingerprint()
    assert load_spec(path).fingerprint() != spec.fingerprint()
    with pytest.raises(ConfigError, match="steps: -1 is not valid"):
        load_spec(path, sets=["steps=-1"])
    with pytest.raises(ConfigError, match="--set trainer.lr: trainer is 'gan', not a mapping"):
        load_spec(path, sets=["trainer.lr=1"])


def test_a_spec_is_checked_without_importing_ray():
    """Parsing a spec, early_stop and ASHA included, imports no Ray (Ray Tune alone costs about
    a second): a bad spec is refused, and a sweep's status read, without it."""
    import subprocess
    import sys

    code = ("import sys; from gansweep.jobs.spec import parse_spec; parse_spec({'name': 't', "
            "'trainer': 'gan', 'dataset': 'ring8', 'trials': 2, 'steps': 40, "
            "'report_every': 20, 'metric': 'modes_captured', 'storage': '/nonexistent', "
            "'early_stop': {'collapse': {'threshold': 0.3}, 'asha': {'grace_steps': 20}}}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_finish_leaders_is_a_budget_option_outside_the_fingerprint():
    on = parse_spec(spec_with(budget={"hours": 1, "finish_leaders": True}))
    off = parse_spec(spec_with(budget={"hours": 1}))
    assert on.budget["finish_leaders"] is True and "finish_leaders" not in off.budget
    assert on.fingerprint() == off.fingerprint()  # a resume may switch it
    with pytest.raises(ConfigError, match="budget.finish_leaders: 3 is not valid; write true"):
        parse_spec(spec_with(budget={"hours": 1, "finish_leaders": 3}))
    with pytest.raises(ConfigError, match="budget: .* is not valid"):
        parse_spec(spec_with(budget={"finish_leaders": True}))  # a lever with nothing to keep


def test_the_demo_specs_are_valid_and_make_nothing(tmp_path):
    """`make demo`'s four specs parse, name the families the README says, and put their
    sweeps under the output folder (its sweeps take minutes, so the suite runs no demo; the
    report over the same families is tests/test_report.py's family comparison)."""
    from pathlib import Path

    from gansweep.jobs.demo import demo_specs

    specs = list(demo_specs(tmp_path))
    assert [s.trainer for s in specs] == ["gan", "dcgan", "wgan-gp", "som"]
    assert all(Path(s.sweep_dir).parent == tmp_path / "sweeps" for s in specs)
    assert not (tmp_path / "sweeps").exists()
