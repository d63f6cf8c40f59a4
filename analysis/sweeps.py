"""Sweep directories into pandas, from files only.

Reads what a sweep leaves on disk (analysis/layout.py), never Ray or the driver: the frozen
spec, sweep.json, and per configuration config.json, metrics.csv and result.json (absent
while the configuration runs or after an interruption), so it works on a sweep that is
running, finished or was interrupted. Each configuration is one
row, whichever Ray trial ids it ran under. A configuration's "value" is its spec metric as
measured; the "objective" is what the searcher saw (a penalty for collapsed or diverged runs).
A two-objective sweep (`metric: [fid, gpu_seconds]`) adds "value_2" and "objective_2" for the
second, and ranks configurations by Pareto front (a "front" column: analysis/ranking.py).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from gansweep.analysis import layout, ranking
from gansweep.analysis.layout import (
    FLAGS,
    META,
    SPEC,
    UNFINISHED,
    TrialStore,
    UriPath,
    is_sweep_dir,
    metrics_rows,
    read_meta,
    sweep_path,
)
from gansweep.analysis.records import ONE_SEED, RunRecord, RunResult, number, seeds_of
from gansweep.analysis.summary import read_digest, read_summary
from gansweep.analysis.vocabulary import DIRECTIONS, LOSSES, Objectives, kind_of_metric
from gansweep.trainers.data import dataset_name
from gansweep.trainers.errors import ConfigError

BASE_COLUMNS = ("rank", "key", "config_key", "seed", "steps_planned", "state", "stop_step",
                "time_s", "objective", "created", "finished", "value")


@dataclass
class Sweep(Objectives):
    root: Path | UriPath  # a path, or a URI for a sweep in a bucket
    name: str
    trainer: str
    dataset: Any
    metric: str
    steps: int
    report_every: int
    planned: int
    seed: int
    study_name: str | None
    trials: pd.DataFrame
    curves: dict[str, pd.DataFrame]
    configs: dict[str, dict] = field(default_factory=dict)  # key -> configuration as trained
    rerun: dict | None = None  # a rerun's record: {"of", "top", "seeds", "configs"}
    notes: list[str] = field(default_factory=list)
    seeds: dict = field(default_factory=lambda: dict(ONE_SEED))  # the spec's `seeds`
    budget: dict = field(default_factory=dict)  # limits in force ({steps, hours}), if any
    configurations: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row each
    damage: list[dict] = field(default_factory=list)  # records found torn (TrialStore.damaged)
    driver_runs: list = field(default_factory=list)  # sweep.json's DriverRun records
    metric_2: str | None = None  # a two-objective sweep's second objective
    features: Any = None  # the spec's `features`: what fid and the k-NN scores measure in

    @property
    def pareto(self) -> bool:
        """Two objectives: the sweep returns a Pareto front."""
        return self.metric_2 is not None

    def front(self) -> pd.DataFrame:
        """The ranked configurations on the Pareto front (two objectives; best first, the
        knee first), or the best configuration alone (one objective)."""
        r = self.ranked_configurations()
        if not self.pareto:
            return r.head(1)
        return r[r["front"] == 0] if "front" in r.columns else r

    def pick(self, rule: str | None = None) -> dict | None:
        """The front configuration a rule picks (`knee`, `best:METRIC`: ranking.pick), or the
        best configuration of a one-objective sweep (rule None)."""
        if not self.pareto or rule is None:
            return self.best_configuration()
        front = self.front()
        if not len(front):
            return None
        points = list(zip(front["value"].astype(float), front["value_2"].astype(float)))
        i = ranking.pick(points, self.modes, self.metrics, rule)
        return front.iloc[i].to_dict()

    @property
    def dataset_name(self) -> str:
        return dataset_name(self.dataset, short=True)

    @property
    def kind(self) -> str:
        """What its configurations leave and are scored on (a trainer's OUTPUT kind)."""
        return kind_of_metric(self.metrics)

    def output_path(self, key: str) -> Path | UriPath:
        return self.root / layout.TRIALS / key / layout.output_file(self.kind)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.trainer})"

    @property
    def n_unfinished(self) -> int:
        return int((self.trials["state"] == UNFINISHED).sum()) if len(self.trials) else 0

    @property
    def n_ended(self) -> int:
        return len(self.trials) - self.n_unfinished

    @property
    def n_configurations_ended(self) -> int:
        """Configurations none of whose runs is unfinished (a rerun plans runs instead)."""
        if self.is_rerun:
            return self.n_ended
        c = self.configurations
        return int((c["state"] != UNFINISHED).sum()) if len(c) else 0

    @property
    def finished(self) -> bool:
        return self.n_unfinished == 0 and self.n_configurations_ended >= self.planned

    @property
    def is_rerun(self) -> bool:
        return self.rerun is not None

    def hp_columns(self) -> list[str]:
        return [c for c in self.trials.columns if c.startswith("hp_")]

    def ranked(self) -> pd.DataFrame:
        """Runs with a rank (completed, finite value), best first."""
        t = self.trials
        return t[t["rank"].notna()].sort_values("rank")

    def ranked_configurations(self) -> pd.DataFrame:
        """Configurations with a rank (every ended run completed), best first: those judged
        on all their seeds, then those judged on fewer."""
        c = self.configurations
        return c[c["rank"].notna()].sort_values("rank") if len(c) else c

    def best_configuration(self) -> dict | None:
        """What the sweep returns: its top configuration by the seed-robust value."""
        r = self.ranked_configurations()
        return r.iloc[0].to_dict() if len(r) else None

    def steps_spent(self) -> int:
        """Training steps over every run (a stopped run's up to where it stopped)."""
        return int(np.nansum(self.trials["stop_step"].astype(float))) if len(self.trials) else 0

    def progress_line(self) -> str:
        ended = self.n_configurations_ended
        runs = "" if self.is_rerun or self.n_ended == ended else f" ({self.n_ended} runs)"
        if self.finished:
            return f"finished: {ended} of {self.planned} configurations ended{runs}"
        shown = " (shown at their last reported step)" if self.n_unfinished else ""
        return (f"NOT FINISHED (running or interrupted): {ended} of {self.planned} "
                f"configurations ended{runs}, {self.n_unfinished} unfinished{shown}; what "
                "follows covers what is there so far")

    def budget_line(self) -> str:
        """The budget in force, spent and left ('' without one)."""
        parts = []
        if "steps" in self.budget:
            spent = self.steps_spent()
            parts.append(f"{spent} of {self.budget['steps']} steps spent, "
                         f"{max(0, self.budget['steps'] - spent)} left")
        if "hours" in self.budget:
            parts.append(f"{self.budget['hours']:g} h (wall-clock: gansweep status counts it)")
        return "; ".join(parts)


def finite(v: Any) -> float | None:
    """A finite number, or None: for JSON (which has no NaN or inf) and for rankings."""
    v = number(v)
    return v if math.isfinite(v) else None


def _read_curve(data: bytes | None) -> pd.DataFrame:
    """metrics.csv as numbers (flags as booleans)."""
    head, body = metrics_rows(data)
    if not body:
        return pd.DataFrame()
    cols = {}
    for j, name in enumerate(head):
        vals = [r[j] for r in body]
        if name in FLAGS:
            cols[name] = np.array([v.strip().lower() == "true" for v in vals], dtype=bool)
        else:
            cols[name] = np.array([number(v) if v != "" else math.nan for v in vals])
    return pd.DataFrame(cols)


def last_step(metrics: bytes | None) -> int:
    """The step of a run's last whole report in its metrics.csv (0 before its first): where an
    interrupted run resumes, and what it has spent of a step budget."""
    head, body = metrics_rows(metrics)
    if not body or "step" not in head:
        return 0
    step = number(body[-1][head.index("step")])
    return int(step) if math.isfinite(step) else 0


def budget_events(trials: pd.DataFrame) -> pd.DataFrame:
    """Ended runs as the budget spent them, in the order they ended: a run's steps when it
    ended, and a revived run's in two parts, to its pause when it paused (as the collapsed run
    it then was, valueless) and the rest when its revival ended. Columns: key, state, value,
    steps, time_s, and runs (how many runs had ended by then, each counted once)."""
    t = trials[trials["state"] != UNFINISHED]
    rows = []
    for r in t.to_dict("records"):
        order = r["finished"] if math.isfinite(number(r.get("finished"))) else \
            number(r.get("created"))
        step, secs = number(r.get("stop_step")), number(r.get("time_s"))
        paused = number(r.get("revived_from_step", math.nan))
        if math.isfinite(paused):
            psecs = number(r.get("paused_time_s", math.nan))
            rows.append({"key": r["key"], "state": layout.COLLAPSED, "value": math.nan,
                         "steps": paused, "time_s": psecs,
                         "_o": number(r.get("paused_finished", math.nan))})
            step, secs = step - paused, secs - psecs if math.isfinite(psecs) else secs
        rows.append({"key": r["key"], "state": r["state"], "value": number(r.get("value")),
                     "steps": step, "time_s": secs, "_o": order})
    out = pd.DataFrame(rows, columns=["key", "state", "value", "steps", "time_s", "_o"])
    out["_o"] = out["_o"].astype(float).fillna(0.0)
    out = out.sort_values(["_o", "key"], kind="stable").drop(columns="_o")
    return out.assign(runs=(~out["key"].duplicated()).cumsum())


class Curves(dict):
    """key -> metrics.csv as a DataFrame, read when first asked for (a report draws a dozen
    curves of a sweep that may hold ten thousand runs)."""

    def __init__(self, store: TrialStore, keys: list[str]):
        super().__init__()
        self.store, self.known = store, keys

    def __missing__(self, key: str) -> pd.DataFrame:
        if key not in self.known:
            raise KeyError(key)
        curve = self[key] = _read_curve(self.store.read(key, layout.METRICS))
        return curve

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key) -> bool:
        return key in self.known

    def __iter__(self):
        return iter(self.known)

    def __len__(self) -> int:
        return len(self.known)

    def keys(self):
        return list(self.known)

    def items(self):
        return [(k, self[k]) for k in self.known]


def damage_line(note: dict) -> str:
    """One damaged record, as status, report and the driver say it."""
    kept = f"kept as {note['kept_as']}" if note.get("kept_as") else "not yet set aside"
    return (f"damaged: {note['file']} of run {note['key']} ({note['reason']}; {kept}): "
            f"{note['what_happens']}")


def load_sweep(root: str | Path) -> Sweep:
    """One sweep directory as a `Sweep` (a ConfigError for a directory that is not one)."""
    root = sweep_path(root)
    try:
        found = root.is_dir()
    except OSError as exc:  # a bucket this machine cannot reach
        raise ConfigError(f"{root} cannot be read ({exc}); check the storage credentials and "
                          "endpoint in this machine's environment") from None
    if not found:
        raise ConfigError(f"{root} does not exist; give a sweep directory (storage/name of a "
                          "submitted spec)")
    if not is_sweep_dir(root):
        raise ConfigError(f"{root} is not a gansweep sweep directory (no {SPEC} / {META}); "
                          "give the directory `gansweep submit` created")
    try:
        spec = yaml.safe_load((root / SPEC).read_text())
        meta = read_meta(root)
    except (yaml.YAMLError, ValueError, OSError) as exc:
        raise ConfigError(f"{root}: sweep files are unreadable ({exc})") from None
    missing = [k for k in ("name", "trainer", "dataset", "steps", "metric") if k not in spec]
    names = [] if missing else spec["metric"] if isinstance(spec["metric"], list) \
        else [spec["metric"]]
    if missing or not 1 <= len(names) <= 2 or any(m not in DIRECTIONS for m in names):
        raise ConfigError(f"{root / SPEC}: not a frozen sweep spec (missing "
                          f"{', '.join(missing) or 'a known metric'})")
    metric, mode = names[0], DIRECTIONS[names[0]]
    metric_2 = names[1] if len(names) == 2 else None
    store = TrialStore.of(root)
    summary = read_summary(root)
    rows, configs, notes, keys = [], {}, [], []
    orphans = 0
    for key in store.keys():
        d = summary.get(key) or read_digest(store, key)
        if d is None:  # a directory a killed trial left before writing anything
            orphans += 1
            continue
        keys.append(key)
        record = RunRecord.from_json(d["record"]).filled_from(spec)
        configs[key] = record.config
        rows.append(_row(key, record, d, metric, metric_2))
    if orphans:
        notes.append(f"{orphans} trial director{'y' if orphans == 1 else 'ies'} without "
                     "config.json left out (a trial just starting, or one killed before its "
                     "first write)")
    damage = store.damage_notes()
    notes += [damage_line(n) for n in damage]
    trials = pd.DataFrame(rows)
    if len(trials):
        trials = _rank(trials, mode)
    else:
        trials = pd.DataFrame({c: pd.Series(dtype=object if c in ("key", "config_key", "state")
                                            else float) for c in BASE_COLUMNS})
    seeds = seeds_of(spec)
    n_configs = trials["config_key"].nunique() if len(trials) else 0
    planned = int(meta.trials_in_force(spec.get("trials")) or n_configs)
    budget = {k: v for k, v in meta.budget_in_force(spec.get("budget")).items()
              if v is not None}
    return Sweep(root=root, name=str(spec["name"]), trainer=str(spec["trainer"]),
                 dataset=spec["dataset"], metric=metric, steps=int(spec["steps"]),
                 report_every=int(spec.get("report_every") or 1), planned=planned,
                 seed=int(spec.get("seed") or 0), study_name=meta.study_name,
                 trials=trials, curves=Curves(store, keys), configs=configs,
                 rerun=None if meta.rerun is None else meta.rerun.to_json(), notes=notes,
                 seeds=seeds, budget=budget, damage=damage, metric_2=metric_2,
                 driver_runs=list(meta.runs), features=spec.get("features"),
                 configurations=configurations_table(
                     trials, seeds, mode,
                     None if metric_2 is None else (mode, DIRECTIONS[metric_2])))


def _row(key: str, record: RunRecord, d: dict, metric: str, metric_2: str | None = None
         ) -> dict:
    """One run's row of the table, from its digest (d: summary.json's, or read now)."""
    result = None if d["result"] is None else RunResult.from_json(d["result"])
    final = d["final"]
    row: dict[str, Any] = {
        "key": key, "seed": record.seed,
        "config_key": layout.config_key(record.trainer, record.dataset, record.config,
                                        record.steps),
        "steps_planned": record.steps}
    if result is None:
        row.update(state=UNFINISHED, stop_step=number(final.get("step", 0)),
                   time_s=number(final.get("time_s")), objective=math.nan)
    else:
        row.update(state=result.stop_reason, stop_step=number(result.stop_step),
                   time_s=number(result.time_s), objective=number(result.objective))
    if not math.isfinite(row["time_s"]):
        row["time_s"] = number(final.get("time_s"))
    row["created"] = number(record.created)
    row["finished"] = number(None if result is None else result.finished)
    paused = None if result is None else result.revived  # a collapsed run trained on
    row["revived_from_step"] = number(None if paused is None else paused.step)
    row["paused_finished"] = number(None if paused is None else paused.finished)
    row["paused_time_s"] = number(None if paused is None else paused.time_s)
    row["value"] = number(final.get(metric))
    if metric_2 is not None:
        row["value_2"] = number(final.get(metric_2))
        row["objective_2"] = number(final.get("objective_2")) if result is not None \
            else math.nan
    for m in (*LOSSES, *DIRECTIONS):
        if m in final:
            row[f"final_{m}"] = number(final[m])
    for m, v in d["best"].items():
        row[f"best_{m}"] = float(v)
    for name, v in record.config.items():
        row[f"hp_{name}"] = v
    return row


def _rank(trials: pd.DataFrame, mode: str) -> pd.DataFrame:
    """Rank the runs that completed, by their value (analysis/ranking.py); the others keep a
    blank rank and sort after them: unfinished ones by their value so far, then stopped ones
    (collapsed, diverged, ASHA, failed: never what a sweep returns) by their value, then those
    with none."""
    t = trials.copy()
    values = t["value"].astype(float)
    t["_group"] = [ranking.run_standing(s, v) for s, v in zip(t["state"], values)]
    t["_v"] = ranking.keys(values, mode)
    t = t.sort_values(["_group", "_v", "key"]).reset_index(drop=True)
    rank = np.where(t["_group"] == ranking.RUN_COMPLETED, np.arange(1, len(t) + 1), np.nan)
    t.insert(0, "rank", rank)
    return t.drop(columns=["_group", "_v"])


def configurations_table(trials: pd.DataFrame, seeds: dict, mode: str,
                         modes: tuple[str, str] | None = None) -> pd.DataFrame:
    """One row per configuration over its seeds: its value (`seeds.statistic` of the metric as
    measured over the seeds it ended), spread, per-seed values, how its runs ended, and its
    rank, all as analysis/ranking.py defines them: judged on all `seeds.count` seeds first,
    then on fewer; a run still in flight, or interrupted when an hour budget ran out, does not
    count yet. Below them, unranked: configurations with no run ended, then those with a
    stopped run (collapsed, diverged, ASHA, failed) or a seed without a value, which a sweep
    never returns.

    Two objectives (`modes`): "value_2" and "objective_2" likewise for the second, and
    configurations of each standing (all seeds, then fewer) in ranking.pareto_order; "front"
    numbers their non-dominated fronts, those judged on all seeds first (front 0: the Pareto
    front a sweep returns)."""
    if not len(trials):
        return pd.DataFrame(columns=["rank", "config_key", "key", "seeds", "value", "std"])
    hp = [c for c in trials.columns if c.startswith("hp_")]
    # Plain loops over the runs sorted by configuration and seed: a pandas group per
    # configuration costs a millisecond, ten seconds at ten thousand configurations.
    t = trials.sort_values(["config_key", "seed"], kind="stable")
    two = ("value_2", "objective_2") if modes else ()
    cols = {c: t[c].tolist() for c in ("config_key", "key", "seed", "state", "value",
                                        "objective", "stop_step", "time_s", "finished", *two,
                                        *hp)}
    rows = []
    i, n = 0, len(t)
    while i < n:
        cid = cols["config_key"][i]
        j = i
        while j < n and cols["config_key"][j] == cid:
            j += 1
        idx = range(i, j)
        ended = [k for k in idx if cols["state"][k] != UNFINISHED]
        measured = [float(cols["value"][k]) for k in ended]
        vals = [v for v in measured if math.isfinite(v)]
        value = ranking.configuration_value(measured, seeds["statistic"], mode)
        states = {cols["state"][k] for k in idx}
        stopped = sorted(states - {layout.COMPLETED, UNFINISHED})
        objs = [float(cols["objective"][k]) for k in ended
                if not math.isnan(float(cols["objective"][k]))]
        rows.append({
            "config_key": cid, "key": cols["key"][i], "seeds": len(ended), "runs": j - i,
            "value": value,
            "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan,
            "min": min(vals) if vals else math.nan, "max": max(vals) if vals else math.nan,
            "values": vals, "seed_list": [int(cols["seed"][k]) for k in ended],
            "state": (stopped[0] if stopped else UNFINISHED if UNFINISHED in states
                      else layout.COMPLETED),
            "stop_step": float(sum(float(cols["stop_step"][k]) for k in idx)),
            "time_s": float(np.nansum([float(cols["time_s"][k]) for k in idx])),
            "objective": ranking.statistic(objs, seeds["statistic"], mode),
            "finished": max((float(cols["finished"][k]) for k in ended), default=math.nan),
            **{c: cols[c][i] for c in hp},
            "_standing": ranking.standing(states, len(ended), value, seeds["count"])})
        if modes:
            row = rows[-1]
            row["value_2"] = ranking.configuration_value(
                [float(cols["value_2"][k]) for k in ended], seeds["statistic"], modes[1])
            objs = [float(cols["objective_2"][k]) for k in ended
                    if not math.isnan(float(cols["objective_2"][k]))]
            row["objective_2"] = ranking.statistic(objs, seeds["statistic"], modes[1])
            if ranking.is_ranked(row["_standing"]) and not math.isfinite(row["value_2"]):
                row["_standing"] = ranking.UNRANKED  # no value in one objective
        i = j
    if modes:
        rows = _pareto_sorted(rows, mode, modes)
    else:
        rows.sort(key=lambda r: ranking.order(r["_standing"], r["value"], mode,
                                              r["config_key"]))
    c = pd.DataFrame(rows)
    ranked = np.array([ranking.is_ranked(w) for w in c["_standing"]])
    c.insert(0, "rank", np.where(ranked, np.arange(1, len(c) + 1), np.nan))
    c["judged_on_all_seeds"] = c["_standing"] == ranking.ALL_SEEDS
    return c.drop(columns="_standing")


def _pareto_sorted(rows: list[dict], mode: str, modes: tuple[str, str]) -> list[dict]:
    """Two objectives: ranked configurations by standing, then ranking.pareto_order within it
    (with a "front" column counting on across standings), then the unranked as for one."""
    out, offset = [], 0
    for where in (ranking.ALL_SEEDS, ranking.FEWER_SEEDS):
        group = [r for r in rows if r["_standing"] == where]
        points = [(r["value"], r["value_2"]) for r in group]
        fronts = ranking.fronts(points, modes)
        order = ranking.pareto_order(points, modes, [r["config_key"] for r in group])
        for i in order:
            group[i]["front"] = offset + fronts[i]
            out.append(group[i])
        offset += max(fronts, default=-1) + 1
    rest = [r for r in rows if not ranking.is_ranked(r["_standing"])]
    rest.sort(key=lambda r: ranking.order(r["_standing"], r["value"], mode, r["config_key"]))
    for r in rest:
        r["front"] = math.nan
    return out + rest


def find_reruns(roots: list[Path | UriPath]) -> list[Path | UriPath]:
    """Rerun siblings (SWEEP_DIR-rerun) of the given sweeps that were not given themselves."""
    given = {p.resolve() for p in roots}
    out = []
    for root in roots:
        sib = layout.rerun_dir(root)
        if sib.resolve() not in given and is_sweep_dir(sib):
            out.append(sib)
            given.add(sib.resolve())
    return out


def load_sweeps(roots: list[str | Path], with_reruns: bool = True) -> list[Sweep]:
    paths = [sweep_path(r) for r in roots]
    if not paths:
        raise ConfigError("give at least one sweep directory")
    if with_reruns:
        paths += find_reruns(paths)
    seen, sweeps = set(), []
    for p in paths:
        if p.resolve() in seen:
            continue
        seen.add(p.resolve())
        sweeps.append(load_sweep(p))
    names = [s.name for s in sweeps]
    for s in sweeps:  # the same spec name under two storage paths: tell them apart
        if names.count(s.name) > 1:
            s.name = s.root.name if [x.root.name for x in sweeps].count(s.root.name) == 1 \
                else str(s.root)
    return sweeps


def trials_table(sweeps: list[Sweep]) -> pd.DataFrame:
    """All configurations of all sweeps, one row each (what `trials.csv` holds)."""
    frames = []
    for s in sweeps:
        t = s.trials.copy()
        t.insert(0, "metric", s.metric)
        if s.pareto:
            t.insert(1, "metric_2", s.metric_2)
        t.insert(0, "dataset", s.dataset_name)
        t.insert(0, "trainer", s.trainer)
        t.insert(0, "sweep", s.name)
        t["rerun_of"] = Path(s.rerun["of"]).name if s.rerun else ""
        frames.append(t)
    out = pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame()
    if not len(out):
        return out
    front = ["sweep", "trainer", "dataset", "key", "rank", "state", "metric", "value",
             "objective", "metric_2", "value_2", "objective_2", "stop_step", "steps_planned",
             "time_s", "seed", "rerun_of"]
    hp = sorted(c for c in out.columns if c.startswith("hp_"))
    final = [c for c in out.columns if c.startswith("final_")]
    best = [c for c in out.columns if c.startswith("best_")]
    rest = [c for c in out.columns if c not in set(front + hp + final + best)]
    return out[[c for c in front if c in out.columns] + hp + final + best + rest]


def rerun_summary(rerun: Sweep, original: Sweep | None) -> pd.DataFrame:
    """Per configuration of a rerun: its metric's mean and spread across the new seeds, ranked
    by the mean (the direction of the metric), beside its single value in the original sweep."""
    t = rerun.trials
    if not len(t):
        return pd.DataFrame()
    configs = (rerun.rerun or {}).get("configs") or []
    by_cfg = {_cfg_id(c["config"]): dict(c) for c in configs}
    if original is not None:  # its rank now (the sweep may have grown since the rerun began)
        now = {k: (r, v) for k, r, v in zip(original.trials["key"], original.trials["rank"],
                                             original.trials["value"])}
        for c in by_cfg.values():
            if c.get("key") in now:
                c["rank"], c["value"] = now[c["key"]]
    hp_cols = rerun.hp_columns()
    groups: dict[str, list[int]] = {}
    for i, key in zip(t.index, t["key"]):
        groups.setdefault(_cfg_id(rerun.configs.get(key, {})), []).append(i)
    rows = []
    for cid, idx in groups.items():
        g = t.loc[idx]
        ended = g[g["state"] != UNFINISHED]
        vals = ended["value"].astype(float)
        vals = vals[np.isfinite(vals)]
        info = by_cfg.get(cid, {})
        rows.append({
            "config": info.get("key", g["key"].iloc[0])[:8],
            "sweep_rank": info.get("rank", math.nan), "sweep_value": info.get("value", math.nan),
            "seeds": len(g), "ended": len(ended),
            "mean": float(vals.mean()) if len(vals) else math.nan,
            "std": float(vals.std(ddof=1)) if len(vals) > 1 else math.nan,
            "min": float(vals.min()) if len(vals) else math.nan,
            "max": float(vals.max()) if len(vals) else math.nan,
            "collapsed": int((g["state"] == layout.COLLAPSED).sum()),
            "diverged": int((g["state"] == layout.DIVERGED).sum()),
            "values": [float(v) for v in vals],
            **{c: g[c].iloc[0] for c in hp_cols},
        })
    out = pd.DataFrame(rows)
    out["_k"] = ranking.keys(out["mean"], rerun.mode)
    out["_s"] = out["std"].fillna(np.inf)  # ties: the steadier, then the sweep's order
    out["_r"] = pd.to_numeric(out["sweep_rank"], errors="coerce").fillna(np.inf)
    out = out.sort_values(["_k", "_s", "_r"]).drop(columns=["_k", "_s", "_r"])
    out = out.reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def _cfg_id(config: dict) -> str:
    def norm(v):
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating,)):
            return float(v)
        if isinstance(v, np.bool_):
            return bool(v)
        return v

    return json.dumps({k: norm(v) for k, v in config.items()}, sort_keys=True, default=str)
