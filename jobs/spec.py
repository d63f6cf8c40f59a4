"""Sweep specs: YAML in, one validated and frozen `SweepSpec` out, before any Ray process starts.

Every refusal is a `ConfigError` naming the key and what to write instead. Frozen means no
field can be reassigned and the mappings it holds refuse changes (jobs/frozen.py).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gansweep.analysis.records import ONE_SEED
from gansweep.analysis.vocabulary import (
    COST_METRICS,
    DIRECTIONS,
    MAP_METRICS,
    MIXTURE_METRICS,
    MIXTURES,
    Objectives,
    default_metric,
    metrics_for,
)
from gansweep.jobs.frozen import freeze, thaw
from gansweep.trainers import plugins
from gansweep.trainers.data import dataset_name
from gansweep.trainers.errors import ConfigError
from gansweep.trainers.registry import TRAINERS, get_trainer

SAMPLERS = ("tpe", "random", "cmaes", "gp", "auto")
MULTI_SAMPLERS = ("tpe", "random", "gp", "auto")  # those Optuna runs on two objectives
STATISTICS = ("mean", "worst")
SEEDS_DEFAULT = {"count": 3, "top": 3, "statistic": "mean"}
# What a sweep directory made before a key existed means by its absence (jobs/sweep_dir.py
# fills these in when it opens one, so an old sweep resumes as it ran).
LEGACY = {"seeds": ONE_SEED}
KEYS = {
    "name": "the sweep's directory under storage",
    "trainer": "dcgan | wgan | wgan-gp | gan | som",
    "dataset": "a name or {name: digits, image_size: 16}",
    "trials": "configurations Optuna proposes (a cap when a budget is given)",
    "budget": "{steps: N} training steps summed over every run and/or {hours: H} of "
              "wall-clock; finish_leaders: true stops new configurations once what is left "
              "only pays for the leading configurations' remaining seeds",
    "seeds": "{count: 3, top: 3, statistic: mean}: configurations ranking in the top 3 on "
             "the seeds run so far are trained on up to 3 seeds; 1 = one seed each",
    "sampler": "Optuna's sampler: " + " | ".join(SAMPLERS),
    "steps": "training steps per trial (som: epochs)",
    "report_every": "steps between reports (and checkpoints)",
    "score_every": "steps between full quality scores (default: at the end; the objective "
                   "is scored at every report)",
    "metric": "the objective: " + ", ".join(DIRECTIONS) + "; or two of them, [quality, "
              "cost] such as [fid, gpu_seconds], for a Pareto front (docs/pareto.md)",
    "seed": "seed of the search and of every trial",
    "space": "overrides and extensions of the trainer's default search space",
    "fixed": "hyperparameters held constant",
    "early_stop": "collapse / divergence / asha stopping rules",
    "resources": "per trial: {cpu: 1, gpu: 0.25}",
    "max_concurrent": "trials running at once",
    "max_failures": "retries of a trial whose process dies",
    "storage": "a local directory, a shared filesystem path, s3://bucket/prefix or gs://...",
    "study": "the Optuna study's database: sqlite (a file in the sweep directory, the "
             "default) or postgresql://USER@HOST:PORT/DATABASE",
    "features": "the network FID, precision/recall, density/coverage and the collapse "
                "signal measure in: module:callable of your own, or inception / {inception: "
                "PATH} for Inception-v3 as papers use (default: the dataset's built-in "
                "evaluator)",
    "py_modules": "folders of your own Python packages (a trainer, loader or features named "
                  "as module:attribute) that Ray ships to every node",
    "warm_start": "earlier sweeps of this trainer to start from: SWEEP_DIR, a list, or "
                  "{sweeps: [...], top: 5}: their top configurations run first and their "
                  "finished trials (same metric) are the sampler's history",
    "tracking": "experiment trackers every run is logged to: {mlflow: URI} and/or "
                "{wandb: {project: P, mode: offline}} (docs/tracking.md)",
}
# Keys a sweep made before they existed lacks: at these values they change nothing, so they
# stay out of the fingerprint and such a sweep still resumes.
NEUTRAL = {"features": None, "warm_start": None, "tracking": None}
REQUIRED = ("name", "trainer", "dataset", "steps")
# Every seed a sweep derives ends in numpy, whose RandomState (Optuna's samplers) takes
# 0 .. 2**32 - 1: its races use seed .. seed + seeds.count - 1, a rerun the seeds after those,
# and each driver run seeds its sampler with seed + 1000 * (driver runs so far). Room is kept
# for RESUMES driver runs, so a seed accepted today cannot overflow on a later resume.
SEED_LIMIT = 2**32 - 1
RESUMES = 100_000
SEED_RESERVE = 1000 * RESUMES
NAME_BYTES = 200  # filesystems take 255 per name; leave room for `-rerun` and temporary files


@dataclass(frozen=True)
class SweepSpec(Objectives):
    name: str
    trainer: str
    dataset: Any
    trials: int | None
    steps: int
    report_every: int
    metric: str
    seed: int = 0
    space: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    early_stop: dict = field(default_factory=dict)
    resources: dict = field(default_factory=lambda: {"cpu": 1, "gpu": 0})
    max_concurrent: int = 2
    max_failures: int = 2
    score_every: int | None = None
    storage: str = "sweeps"
    budget: dict = field(default_factory=lambda: {"steps": None, "hours": None})
    seeds: dict = field(default_factory=lambda: dict(SEEDS_DEFAULT))
    sampler: str = "tpe"
    study: str | None = None  # a database URL without password (jobs/study.py); None: sqlite
    features: Any = None  # module:callable of the group's own, inception or {inception: PATH}
    # (analysis/features.py)
    py_modules: tuple = ()  # absolute folders Ray ships to every node (trainers/plugins.py)
    warm_start: dict | None = None  # {sweeps: [absolute dirs or URIs], top} (jobs/warm_start)
    # The second objective of a two-objective sweep (`metric: [fid, gpu_seconds]`: `metric`
    # is the first); None for one objective. The spec file writes both as `metric`.
    metric_2: str | None = None
    tracking: dict | None = None  # {mlflow: {uri, experiment}, wandb: {...}} (jobs/tracking)

    def __post_init__(self):
        for name in ("dataset", "space", "fixed", "early_stop", "resources", "budget",
                     "seeds", "warm_start", "tracking"):
            object.__setattr__(self, name, freeze(getattr(self, name)))

    @property
    def sweep_dir(self) -> str:
        return self.storage.rstrip("/") + "/" + self.name

    def to_dict(self) -> dict:
        """Plain dicts and lists, as YAML writes them (two objectives: `metric: [a, b]`)."""
        out = thaw(asdict(self))
        second = out.pop("metric_2")
        if second is not None:
            out["metric"] = [out["metric"], second]
        return out

    def fingerprint(self) -> str:
        """What a sweep directory is bound to: everything that changes what trials mean or
        how configurations are judged. How many, how much and how they are placed or chosen
        (trials, budget, resources, sampler, ...) may change on resume; one seed per
        configuration, the only judgement before `seeds` existed, hashes as it did then."""
        keep = {k: v for k, v in self.to_dict().items()
                if k not in ("trials", "max_concurrent", "storage", "resources", "max_failures",
                             "budget", "sampler", "study", "py_modules", "warm_start",
                             "tracking")
                and not (k in NEUTRAL and v == NEUTRAL[k])}
        if keep["seeds"]["count"] == 1:
            del keep["seeds"]
        return hashlib.sha1(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()


def _int(raw: dict, key: str, low: int, default: Any = None) -> Any:
    value = raw.get(key, default)
    if value is None and default is None and key not in REQUIRED:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}: {value!r} is not valid; write a whole number >= {low}")
    return value


def _name(value: Any) -> str:
    # isprintable(): a newline or escape sequence in a directory name garbles every message
    # and command gansweep prints with it (repr keeps this message on one line)
    if (not isinstance(value, str) or not value or "/" in value or value.startswith(".")
            or not value.isprintable() or len(value.encode()) > NAME_BYTES):
        raise ConfigError(f"name: {value!r} is not valid; write a plain directory name "
                          f"(printable characters, no '/', at most {NAME_BYTES} bytes) such "
                          "as ring8-gan")
    return value


def _seed(raw: dict, count: int) -> int:
    seed = _int(raw, "seed", 0, default=0)
    top = SEED_LIMIT - SEED_RESERVE - count
    if seed > top:
        raise ConfigError(f"seed: {seed} is too large; write a whole number from 0 to {top} "
                          f"(seeds derived from it, up to seed + {SEED_RESERVE} for "
                          f"{RESUMES} resumes, must stay in numpy's range 0..2**32-1)")
    return seed


def _one_run_fits(budget: dict, steps: int) -> None:
    if budget["steps"] is not None and budget["steps"] < steps:
        raise ConfigError(f"budget.steps: {budget['steps']} is less than one run ({steps} "
                          "steps), so no run could start; raise budget.steps to a multiple "
                          f"of {steps} (e.g. {steps * 10} for ten runs) or lower steps")


def parse_spec(raw: Any, source: str = "spec") -> SweepSpec:
    """Validate a spec mapping (from YAML) and return it frozen."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a sweep spec is a YAML mapping of keys such as "
                          f"{', '.join(REQUIRED)}")
    raw = copy.deepcopy(raw)
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key {', '.join(unknown)}; valid keys are "
                          f"{', '.join(KEYS)}")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ConfigError(f"{source}: missing key {', '.join(missing)} ({KEYS[missing[0]]})")
    # What needs no trainer first: a refusal of these never imports torch or Ray Tune
    name = _name(raw["name"])
    steps = _int(raw, "steps", 1)
    report_every = _int(raw, "report_every", 1, default=max(1, steps // 10))
    score_every = _int(raw, "score_every", 1)
    if score_every is not None and score_every % report_every:
        raise ConfigError(f"score_every: {score_every} is not a multiple of report_every "
                          f"({report_every}); scores are taken at reports")
    budget = _budget(raw.get("budget"))
    _one_run_fits(budget, steps)
    seeds = _seeds(raw.get("seeds", SEEDS_DEFAULT))
    if raw.get("trials") is None and budget == {"steps": None, "hours": None}:
        raise ConfigError(f"{source}: give trials (how many configurations) or budget "
                          "({steps: N} or {hours: H}), or both")
    trials = _int(raw, "trials", 1) if raw.get("trials") is not None else None
    seed = _seed(raw, seeds["count"])
    sampler = raw.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler: {sampler!r} is not valid; use one of {', '.join(SAMPLERS)}")
    resources = _resources(raw.get("resources", {"cpu": 1, "gpu": 0}))
    storage = _storage(raw.get("storage", "sweeps"))
    from gansweep.jobs import study, warm_start

    study_url = study.parse(raw.get("study"), storage)
    warm = warm_start.parse(raw.get("warm_start"))
    max_concurrent = _int(raw, "max_concurrent", 1, default=2)
    max_failures = _int(raw, "max_failures", 0, default=2)

    py_modules = _py_modules(raw.get("py_modules", []))
    plugins.use_modules(py_modules)  # the driver imports what the spec names from them too
    trainer = raw["trainer"]
    cls = _trainer(trainer)
    dataset = _dataset(raw["dataset"])
    features = _features(raw.get("features"), trainer, cls.OUTPUT)
    metrics = _metrics(raw.get("metric", default_metric(cls.OUTPUT, dataset_name(dataset))),
                       trainer, cls.OUTPUT, dataset)

    from gansweep.search_spaces import validate_space

    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError("fixed: write a mapping such as {code_length: 8}")
    for key, value in fixed.items():
        if key not in cls.HPARAMS:
            raise ConfigError(f"fixed.{key}: trainer {trainer} does not take {key}; it takes "
                              f"{', '.join(sorted(cls.HPARAMS))}")
        fixed[key] = _checked(cls.HPARAMS[key], value, f"fixed.{key}")
    space = validate_space(trainer, raw.get("space") or {}, fixed)
    if len(metrics) == 2 and sampler not in MULTI_SAMPLERS:
        raise ConfigError(f"sampler: {sampler} optimises one objective, and metric names two; "
                          f"use one of {', '.join(MULTI_SAMPLERS)} (tpe is the default)")
    if "gpu_seconds" in metrics and not resources["gpu"]:
        raise ConfigError("metric: gpu_seconds counts the GPUs a trial holds, and "
                          "resources.gpu is 0; use train_seconds on CPU")
    from gansweep.jobs.early_stop import validate_early_stop

    early_stop = validate_early_stop(raw.get("early_stop"), trainer)
    if (early_stop["collapse"] or {}).get("revive") and budget["steps"] is None:
        raise ConfigError("early_stop.collapse.revive: needs a step budget, since a revived run "
                          "spends the steps left over that no fresh run fits in; add budget: "
                          "{steps: N} or drop revive")
    return SweepSpec(
        name=name, trainer=trainer, dataset=dataset, trials=trials,
        steps=steps, report_every=report_every, budget=budget,
        seeds=seeds, sampler=sampler,
        metric=metrics[0], metric_2=metrics[1] if len(metrics) == 2 else None,
        seed=seed, space=space, fixed=fixed,
        early_stop=early_stop,
        resources=resources,
        max_concurrent=max_concurrent,
        max_failures=max_failures,
        score_every=score_every,
        storage=storage,
        study=study_url,
        features=features, py_modules=py_modules,
        warm_start=warm,
        tracking=_tracking(raw.get("tracking"), raw["name"]),
    )


def _tracking(value: Any, name: Any) -> dict | None:
    # What to check lives with the trackers (jobs/tracking/config.py); only the parse is here.
    from gansweep.jobs.tracking.config import parse

    return parse(value, default_experiment=str(name))


def _trainer(name: Any):
    """The trainer's class: built in, registered by an installed package, or module:Class
    (refused unless it follows the contract: trainers/contract.py)."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"trainer: {name!r} is not valid; use one of {', '.join(TRAINERS)} "
                          "or your own class as module:Class")
    try:
        cls = get_trainer(name)
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith("trainer") else f"trainer: {exc}"
                          ) from None
    if cls.COLLAPSE_SIGNAL not in DIRECTIONS:
        raise ConfigError(f"trainer: {name} declares COLLAPSE_SIGNAL = {cls.COLLAPSE_SIGNAL!r}, "
                          f"which gansweep does not measure; use one of {', '.join(DIRECTIONS)}")
    return cls


def _features(value: Any, trainer: str, output: str) -> str | dict | None:
    from gansweep.analysis.features import GROUP, is_inception

    if value is None:
        return None
    if is_inception(value):
        return _inception(value, trainer, output)
    if not (plugins.is_reference(value) or value in plugins.registered(GROUP)):
        raise ConfigError(f"features: {value!r} is not valid; name your feature network as "
                          "module:callable (it maps a batch of samples to (N, F) features), or "
                          "leave features out for the dataset's built-in evaluator")
    return value


def _inception(value: Any, trainer: str, output: str) -> str | dict:
    """`inception`, or `{inception: PATH}` with PATH made absolute (trials run elsewhere);
    the weights themselves are looked for by the driver's data check (jobs/submit.py)."""
    if output != "samples":
        raise ConfigError(f"features: inception scores generated images; trainer {trainer} "
                          "leaves a map, scored by its own map errors: leave features out")
    if value == "inception":
        return value
    path = value["inception"]
    if not isinstance(path, str) or not path:
        raise ConfigError(f"features: {{inception: {path!r}}} is not valid; give the path of "
                          "the weights file, e.g. {inception: /data/weights-inception-2015-12-"
                          "05-6726825d.pth}, or write features: inception")
    return freeze({"inception": str(Path(path).expanduser().absolute())})


def _py_modules(value: Any) -> tuple:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError("py_modules: write a list of folders, e.g. [../my_lab/my_lab]")
    out = []
    for v in value:
        path = Path(v).expanduser().resolve()
        if not (path.is_dir() and (path / "__init__.py").is_file()):
            raise ConfigError(f"py_modules: {v} is not a folder holding a Python package (no "
                              "__init__.py there); give the package's own folder")
        out.append(str(path))
    return tuple(out)


def _budget(value: Any) -> dict:
    if value is None:
        return {"steps": None, "hours": None}
    fix = ("write budget: {steps: 400000} (training steps over all runs), {hours: 2.5}, or "
           "both, with finish_leaders: true to keep what is left for the leaders' seeds")
    if (not isinstance(value, dict) or not set(value) & {"steps", "hours"}
            or set(value) - {"steps", "hours", "finish_leaders"}):
        raise ConfigError(f"budget: {value!r} is not valid; {fix}")
    finish = value.get("finish_leaders", False)
    if not isinstance(finish, bool):
        raise ConfigError(f"budget.finish_leaders: {finish!r} is not valid; write true or false")
    steps, hours = value.get("steps"), value.get("hours")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                              or steps < 1):
        raise ConfigError(f"budget.steps: {steps!r} is not valid; write a whole number >= 1")
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, (int, float))
                              or not 0 < hours < math.inf):
        raise ConfigError(f"budget.hours: {hours!r} is not valid; write a finite number > 0")
    out = {"steps": steps, "hours": None if hours is None else float(hours)}
    return {**out, "finish_leaders": True} if finish else out


def _seeds(value: Any) -> dict:
    fix = "write seeds: {count: 3, top: 3, statistic: mean}, or seeds: 1 for one seed each"
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"count": value}
    if not isinstance(value, dict) or set(value) - set(SEEDS_DEFAULT):
        raise ConfigError(f"seeds: {value!r} is not valid; {fix}")
    out = {**SEEDS_DEFAULT, **value}
    for key in ("count", "top"):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"seeds.{key}: {v!r} is not valid; write a whole number >= 1")
    if out["statistic"] not in STATISTICS:
        raise ConfigError(f"seeds.statistic: {out['statistic']!r} is not valid; use "
                          f"{' or '.join(STATISTICS)}")
    return out


class _Loader(yaml.SafeLoader):
    """YAML as people write numbers: PyYAML follows YAML 1.1, where `1e-4` (no dot) is a
    string, so `lr_g: {low: 1e-4}` would be refused as not a number; YAML 1.2 reads it as
    the float everyone means."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def read_yaml(text: str) -> Any:
    """A spec's YAML (a file, or a --set value), numbers as YAML 1.2 reads them."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def apply_sets(raw: Any, items: list[str] | dict) -> Any:
    """The spec mapping with command-line overrides applied: `--set steps=5000 --set
    space.lr_g.high=1e-3` (a dotted path into the spec; the value is YAML, so
    `--set metric=[fid,train_seconds]` works). A mapping {path: value} does the same from
    Python. The result is validated like the file, and frozen into the sweep directory."""
    if not isinstance(raw, dict) or not items:
        return raw
    raw = copy.deepcopy(raw)
    pairs = items.items() if isinstance(items, dict) else [_set_item(i) for i in items]
    for path, value in pairs:
        where = f"--set {path}"
        parts = str(path).split(".")
        if not all(parts):
            raise ConfigError(f"{where}: write a dotted key such as space.lr_g.high")
        if parts[0] not in KEYS:
            raise ConfigError(f"{where}: unknown key {parts[0]}; valid keys are "
                              f"{', '.join(KEYS)}")
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                head = ".".join(parts[:i + 1])
                raise ConfigError(f"{where}: {head} is {child!r}, not a mapping; set it whole "
                                  f"instead, e.g. --set {head}={{...}}")
            node = child
        node[parts[-1]] = value
    return raw


def _set_item(item: str) -> tuple[str, Any]:
    path, sep, text = item.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set steps=5000 or "
                          "--set space.lr_g.high=1e-3")
    try:
        value = read_yaml(text)
    except yaml.YAMLError:
        raise ConfigError(f"--set {path.strip()}: {text!r} is not a YAML value; quote a "
                          "string, write a number, or [a, b] for a list") from None
    return path.strip(), value


def load_spec(path: str | Path, sets: list[str] | dict = ()) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"spec file {path} does not exist; see jobs/specs/ for examples")
    try:
        raw = read_yaml(path.read_text())
    except yaml.YAMLError as exc:  # its own text spans lines, with a caret under the spot
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    if sets and not isinstance(raw, dict):
        return parse_spec(raw, str(path))  # refused there: not a mapping
    return parse_spec(apply_sets(raw, sets), str(path) + (" with --set" if sets else ""))


def _checked(hparam, value, where: str):
    try:
        return hparam.check(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _dataset(value: Any) -> Any:
    from gansweep.trainers.data import NAMES

    name = value.get("name") if isinstance(value, dict) else value
    if not isinstance(name, str) or not name:
        raise ConfigError("dataset: write a name (" + ", ".join(NAMES) + "), a path, or "
                          "{name: digits, image_size: 16}")
    from gansweep.trainers.data import GROUP

    if plugins.is_reference(name) or name in plugins.registered(GROUP):
        return value  # the group's own loader: its options are its own, checked when loaded
    if name not in NAMES and not Path(name).expanduser().exists():
        raise ConfigError(f"dataset: unknown dataset {name!r}; use one of {', '.join(NAMES)} "
                          "or a path to a .npy/.npz file or a folder of PNG images")
    if isinstance(value, dict):
        extra = sorted(set(value) - {"name", "image_size", "subset"})
        if extra:
            raise ConfigError(f"dataset: unknown option {', '.join(extra)}; use name, "
                              "image_size, subset")
    if name not in NAMES:  # a path: keep it absolute so trials on other machines agree
        path = str(Path(name).expanduser().resolve())
        value = {**value, "name": path} if isinstance(value, dict) else path
    return value


def _metrics(value: Any, trainer: str, kind: str, dataset: Any) -> tuple[str, ...]:
    """`metric`: one objective, or a list of two distinct ones (a Pareto front) of which at
    least one measures quality (a cost alone rewards not training)."""
    fix = ("write one metric (metric: fid) or a list of two different ones, a quality and a "
           "cost, e.g. metric: [fid, train_seconds]")
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            value = value[0]
        elif len(value) != 2:
            raise ConfigError(f"metric: {list(value)!r} names {len(value)} metrics; gansweep "
                              f"searches one or two objectives; {fix}")
        elif not all(isinstance(m, str) for m in value):
            raise ConfigError(f"metric: {list(value)!r} is not valid; {fix}")
        elif value[0] == value[1]:
            raise ConfigError(f"metric: {list(value)!r} names {value[0]} twice; {fix}")
    names = (value,) if not isinstance(value, (list, tuple)) else tuple(value)
    for m in names:
        _check_metric(m, trainer, kind, dataset)
    if all(m in COST_METRICS for m in names):
        raise ConfigError(f"metric: {', '.join(names)} only measure{'s' if len(names) == 1 else ''}"
                          " cost, which not training at all would win; pair a cost with a "
                          "quality metric, e.g. metric: [fid, train_seconds]")
    return names


def _check_metric(metric: Any, trainer: str, kind: str, dataset: Any) -> None:
    """The objective must measure what the trainer leaves (its OUTPUT kind)."""
    if not isinstance(metric, str) or metric not in DIRECTIONS:
        raise ConfigError(f"metric: unknown metric {metric!r}; use one of {', '.join(DIRECTIONS)}")
    if metric not in metrics_for(kind):
        if metric in MAP_METRICS:
            raise ConfigError(f"metric: {metric} is a SOM metric (it scores a map); for "
                              f"trainer {trainer} use e.g. fid, coverage or mode_diversity")
        raise ConfigError(f"metric: {metric} does not apply to trainer {trainer}, which "
                          f"leaves a map; use one of {', '.join(sorted(metrics_for(kind)))}")
    if metric in MIXTURE_METRICS and dataset_name(dataset) not in MIXTURES:
        raise ConfigError(f"metric: {metric} needs a mixture dataset with known modes "
                          f"({', '.join(sorted(MIXTURES))}); use fid or coverage")


def _resources(value: Any) -> dict:
    if not isinstance(value, dict) or set(value) - {"cpu", "gpu"}:
        raise ConfigError("resources: write {cpu: 1, gpu: 0}; gpu may be fractional (0.25 "
                          "runs four trials per GPU)")
    cpu, gpu = value.get("cpu", 1), value.get("gpu", 0)
    for key, v in (("cpu", cpu), ("gpu", gpu)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
            raise ConfigError(f"resources.{key}: {v!r} is not valid; write a finite number "
                              ">= 0")
    if gpu > 1 and gpu != int(gpu):
        raise ConfigError(f"resources.gpu: {gpu} is not valid; above 1 use whole GPUs")
    if cpu == 0 and gpu == 0:
        raise ConfigError("resources: a trial needs some cpu or gpu")
    return {"cpu": cpu, "gpu": gpu}


def _storage(value: Any) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise ConfigError("storage: write a directory path (printable characters) or "
                          "s3://bucket/prefix")
    if "://" in value:
        from gansweep.analysis.layout import check_uri

        try:
            check_uri(value)  # a scheme pyarrow opens; no endpoint or secret in the URI
        except ConfigError as exc:
            raise ConfigError(f"storage: {exc}") from None
        return value.rstrip("/")
    return str(Path(value).expanduser().resolve())
