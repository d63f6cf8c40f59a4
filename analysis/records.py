"""The sweep directory's records as dataclasses, and the rules read from them.

    config.json   RunRecord   what a run trains (a `gansweep train` run directory's too)
    result.json   RunResult   how a run ended; a revived run's keeps where it paused (Revival)
    revived.json  Revival     where a collapsed run paused before it trained on
    sweep.json    SweepMeta   the study, the spec's fingerprint, the driver runs (DriverRun),
                              what a resume extended (trials, budget), a rerun's record (Rerun)

Every record gansweep ever wrote reads: a key a record lacks takes the meaning its absence had
(a sweep made before the key existed resumes and reports as it did), and a key this version
does not know is kept and written back, so a newer gansweep's sweep.json survives a resume by
an older one. Numbers are read as loosely as JSON stores them: strict JSON has no inf or NaN,
so a penalised objective is the string "-inf". Files are read and written by
analysis/layout.py (TrialStore, read_meta, write_meta); nothing here touches storage.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

# How a configuration ended (result.json's stop_reason); readers add UNFINISHED for those
# without a result, and a report that is not a trial's last says RUNNING.
COMPLETED, COLLAPSED, DIVERGED, ASHA, FAILED = "completed", "collapsed", "diverged", "asha", \
    "failed"
ENDED = (COMPLETED, COLLAPSED, DIVERGED, ASHA, FAILED)
STOPPED_EARLY = (COLLAPSED, DIVERGED, ASHA)  # ended before their planned steps on purpose
UNFINISHED, RUNNING = "unfinished", "running"

# What a sweep made before `seeds` existed ran: one seed per configuration (a frozen spec.yaml
# without the key means this; a new spec's default is jobs/spec.py's).
ONE_SEED = {"count": 1, "top": 3, "statistic": "mean"}


def seeds_of(spec: Mapping) -> dict:
    """A frozen spec's `seeds`, with what their absence meant."""
    return {**ONE_SEED, **(spec.get("seeds") or {})}


def number(v: Any) -> float:
    """A number from JSON or CSV ("inf", "nan" strings included); NaN when not a number."""
    if isinstance(v, bool):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _float(v: Any) -> float | None:
    return None if v is None else number(v)


def _int(v: Any) -> int | None:
    v = _float(v)
    return int(v) if v is not None and math.isfinite(v) else None


def _dict(v: Any) -> dict:
    return dict(v) if isinstance(v, Mapping) else {}


class _Json:
    """Fields are written in their order, under their own names; one left None is left out
    (as records before it left it out) unless ALWAYS names it; `extra` holds the keys this
    version does not know, written back after the others."""

    ALWAYS: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "extra" or (v is None and f.name not in self.ALWAYS):
                continue
            if isinstance(v, _Json):
                v = v.to_json()
            elif isinstance(v, list):
                v = [x.to_json() if isinstance(x, _Json) else x for x in v]
            out[f.name] = v
        return {**out, **getattr(self, "extra", {})}

    @classmethod
    def _unknown(cls, d: Mapping) -> dict:
        known = {f.name for f in fields(cls)}
        return {k: v for k, v in d.items() if k not in known}


@dataclass(frozen=True)
class RunRecord(_Json):
    """config.json: what a run trains. A sweep's trial writes every sweep field; a run that
    failed before its first write has only what the driver knew (no node, device, GPUs); a
    `gansweep train` run has no key, steps or trial but says which data it trained on."""

    key: str | None = None
    trainer: str | None = None
    dataset: Any = None  # a name, or a mapping (`{name: digits, image_size: 16}`)
    seed: int | None = None
    steps: int | None = None
    config: dict = field(default_factory=dict)  # the resolved hyperparameters
    first_trial_id: str | None = None
    created: float | None = None
    node_id: str | None = None
    device: str | None = None
    gpu_ids: list[str] | None = None  # the GPUs Ray assigned the trial
    data: str | None = None  # `gansweep train`: the data described, and its fingerprint
    data_fingerprint: str | None = None
    extra: dict = field(default_factory=dict)

    ALWAYS = ("config",)

    @classmethod
    def from_json(cls, d: Mapping) -> RunRecord:
        ids = d.get("gpu_ids")
        return cls(key=d.get("key"), trainer=d.get("trainer"), dataset=d.get("dataset"),
                   seed=_int(d.get("seed")), steps=_int(d.get("steps")),
                   config=_dict(d.get("config")), first_trial_id=d.get("first_trial_id"),
                   created=_float(d.get("created")), node_id=d.get("node_id"),
                   device=d.get("device"),
                   gpu_ids=None if ids is None else [str(i) for i in ids],
                   data=d.get("data"), data_fingerprint=d.get("data_fingerprint"),
                   extra=cls._unknown(d))

    def filled_from(self, spec: Mapping) -> RunRecord:
        """What the record leaves out, from the sweep's spec (trainer, dataset, seed, steps):
        a run trains what its sweep does unless its record says otherwise."""
        missing = {k: spec[k] for k in ("trainer", "dataset", "seed", "steps")
                   if getattr(self, k) is None and k in spec}
        return replace(self, **missing) if missing else self


@dataclass(frozen=True)
class Revival(_Json):
    """revived.json: where a collapsed run paused, before it trained on to its end
    (`early_stop.collapse.revive`); its steps and time to the pause were spent as a
    collapsed run's."""

    step: int | None = None
    finished: float | None = None
    time_s: float | None = None
    objective: float | None = None
    final: dict = field(default_factory=dict)

    ALWAYS = ("step", "finished", "time_s", "objective", "final")

    @classmethod
    def from_json(cls, d: Mapping) -> Revival:
        return cls(step=_int(d.get("step")), finished=_float(d.get("finished")),
                   time_s=_float(d.get("time_s")), objective=_float(d.get("objective")),
                   final=_dict(d.get("final")))


@dataclass(frozen=True)
class RunResult(_Json):
    """result.json: how a run ended. `objective` is what the searcher was told (None: nothing,
    which Optuna records as pruned; -inf / inf: the penalty of a collapsed or diverged run);
    `final` its last report as it was (strings where strict JSON has no number)."""

    key: str | None = None
    stop_reason: str = FAILED  # a result that does not say how it ended is a failure's
    stop_step: int = 0
    objective: float | None = None
    final: dict = field(default_factory=dict)
    trial_id: str | None = None
    time_s: float | None = None
    resumed_from_step: int | None = None
    node_id: str | None = None
    revived: Revival | None = None
    finished: float | None = None
    extra: dict = field(default_factory=dict)

    ALWAYS = ("key", "stop_reason", "stop_step", "objective", "final", "trial_id", "time_s",
              "finished")

    @classmethod
    def from_json(cls, d: Mapping) -> RunResult:
        final = _dict(d.get("final"))
        step = _int(d.get("stop_step"))
        if step is None:  # where its last report was
            step = _int(final.get("step")) or 0
        paused = d.get("revived")
        return cls(key=d.get("key"), stop_reason=d.get("stop_reason") or FAILED,
                   stop_step=step,
                   objective=_float(d.get("objective")), final=final,
                   trial_id=d.get("trial_id"), time_s=_float(d.get("time_s")),
                   resumed_from_step=_int(d.get("resumed_from_step")),
                   node_id=d.get("node_id"),
                   revived=Revival.from_json(paused) if isinstance(paused, Mapping) and paused
                   else None,
                   finished=_float(d.get("finished")), extra=cls._unknown(d))

    def paused(self) -> Revival:
        """This (collapsed) result as the pause a revival trains on from."""
        return Revival(step=self.stop_step, finished=self.finished, time_s=self.time_s,
                       objective=self.objective, final=self.final)


@dataclass(frozen=True)
class DriverRun(_Json):
    """One driver run of a sweep (submit, a resume, a rerun): when it started and when it was
    last seen alive (jobs/progress.py RunClock; reruns before 2026-12 kept no such time)."""

    run_id: str | None = None
    started: float | None = None
    seen: float | None = None
    name: str | None = None
    # What exactly ran (jobs/provenance.py): the driver's gansweep version and git commit,
    # Python, torch, Ray, Optuna; and per Ray node that trained a run, its host, versions,
    # CUDA and device names. None in sweeps made before they were recorded.
    versions: dict | None = None
    nodes: dict | None = None

    @classmethod
    def from_json(cls, d: Mapping) -> DriverRun:
        versions, nodes = d.get("versions"), d.get("nodes")
        return cls(run_id=d.get("run_id"), started=_float(d.get("started")),
                   seen=_float(d.get("seen")), name=d.get("name"),
                   versions=dict(versions) if isinstance(versions, Mapping) else None,
                   nodes=dict(nodes) if isinstance(nodes, Mapping) else None)

    def seconds(self) -> float:
        """Its wall-clock, up to the last time it was seen alive."""
        if self.started is None:
            return 0.0
        return max(0.0, (self.started if self.seen is None else self.seen) - self.started)


# What `gansweep report` compares across the sweeps (and driver runs) it puts side by side.
COMPARED_VERSIONS = ("gansweep", "commit", "python", "torch", "ray", "optuna")


def version_differences(runs_by_sweep: Mapping[str, list[DriverRun]]) -> list[str]:
    """One line per compared version that differs between the driver runs of the sweeps
    given (`torch: 2.12.1 (a) / 2.13.0 (a, b)`), the versions their nodes had included;
    empty when all agree. Runs made before versions were recorded are left out."""
    lines = []
    for name in COMPARED_VERSIONS:
        seen: dict[str, list[str]] = {}
        for sweep, runs in runs_by_sweep.items():
            for run in runs:
                found = [run.versions or {}, *(run.nodes or {}).values()]
                for value in {str(v[name]) for v in found if v.get(name) is not None}:
                    who = seen.setdefault(value, [])
                    if sweep not in who:
                        who.append(sweep)
        if len(seen) > 1:
            lines.append(f"{name}: " + " / ".join(f"{value} ({', '.join(who)})"
                                                  for value, who in sorted(seen.items())))
    return lines


@dataclass(frozen=True)
class Rerun(_Json):
    """A rerun's record: the sweep it reran (`of`), its top K and the new seeds, and the
    configurations picked (each {key, rank, value, seeds, state, config})."""

    of: str = ""
    top: int | None = None
    seeds: list[int] = field(default_factory=list)
    configs: list[dict] = field(default_factory=list)

    ALWAYS = ("of", "top", "seeds", "configs")

    @classmethod
    def from_json(cls, d: Mapping) -> Rerun:
        return cls(of=str(d.get("of") or ""), top=_int(d.get("top")),
                   seeds=list(d.get("seeds") or []), configs=list(d.get("configs") or []))


@dataclass
class SweepMeta(_Json):
    """sweep.json. Changed by a driver as it runs (its runs, what a resume extends), hence not
    frozen; the spec it was made from is spec.yaml, frozen."""

    study_name: str | None = None
    spec_fingerprint: str | None = None
    spec_sha1: str | None = None  # of spec.yaml as written, for quick readers
    created: float | None = None
    runs: list[DriverRun] = field(default_factory=list)
    study_storage: str | None = None  # the study's database URL; None: SQLite in the directory
    trials: int | None = None  # what a resume extended the spec's `trials` to
    budget: dict | None = None  # what a resume extended the spec's budget to
    rerun: Rerun | None = None
    extra: dict = field(default_factory=dict)

    ALWAYS = ("study_name", "runs")

    @classmethod
    def from_json(cls, d: Mapping) -> SweepMeta:
        rerun, budget = d.get("rerun"), d.get("budget")
        return cls(study_name=d.get("study_name"), spec_fingerprint=d.get("spec_fingerprint"),
                   spec_sha1=d.get("spec_sha1"), created=_float(d.get("created")),
                   runs=[DriverRun.from_json(r) for r in d.get("runs") or []
                         if isinstance(r, Mapping)],
                   study_storage=d.get("study_storage") or None, trials=_int(d.get("trials")),
                   budget=dict(budget) if isinstance(budget, Mapping) else None,
                   rerun=Rerun.from_json(rerun) if isinstance(rerun, Mapping) and rerun
                   else None,
                   extra=cls._unknown(d))

    def budget_in_force(self, spec_budget: Mapping | None) -> dict:
        """{steps, hours} (None: no limit): the spec's budget, as a resume extended it."""
        return {"steps": None, "hours": None, **(spec_budget or {}), **(self.budget or {})}

    def trials_in_force(self, spec_trials: int | None) -> int | None:
        """The spec's `trials`, or what a resume extended it to."""
        return spec_trials if self.trials is None else self.trials

    def spent_seconds(self) -> float:
        """Wall-clock of the driver runs so far: what an hour budget has spent (a killed run
        counts up to the last time it was seen alive)."""
        return float(sum(r.seconds() for r in self.runs))
