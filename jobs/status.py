"""`gansweep status SWEEP_DIR`: runs by state, the configuration the sweep returns so far (its
seed-robust value and spread), and the budget spent.

Reads only files (the frozen spec and the trial store), so it works while the sweep runs,
after it ends, and after it was interrupted; each run counts once, whichever Ray trial ids it
ran under.
"""
from __future__ import annotations

import json
from pathlib import Path

from gansweep.analysis import features, layout, ranking
from gansweep.analysis.layout import ENDED, UNFINISHED
from gansweep.analysis.sweeps import damage_line, finite, load_sweep
from gansweep.jobs import sweep_dir as sd
from gansweep.trainers.data import dataset_label


def collect(root: str | Path) -> dict:
    """The sweep's state as a plain dict (what `--json` prints).

    `trials` are runs (a configuration under one seed), best first; `metric` is the spec
    metric as measured (the last report's while a run goes on) and `objective` what the
    searcher was told, null while a run goes on and for the +-inf penalty of a collapsed or
    diverged run (its `state` says which). `configurations` are ranked by the seed-robust
    value (`seeds.statistic` over the seeds each ran); `best` is the first of them, the
    configuration the sweep returns; stopped ones are never ranked.

    Two objectives (`metric: [a, b]`): `metrics` and `modes` name both, each configuration
    also has `metric_2`, `objective_2` and `front` (its non-dominated front, 0: on the Pareto
    front), `front` lists the Pareto front ordered by the first objective, and `best` is its
    knee (what `train --from` trains by default: docs/pareto.md)."""
    from gansweep.jobs import study

    root = layout.sweep_path(root)
    spec, meta = sd.read_frozen(root)  # refuses a directory whose spec was edited
    sweep = load_sweep(root)
    rows = [{"key": t["key"], "config": sweep.configs.get(t["key"], {}), "state": t["state"],
             "seed": t["seed"], "step": int(finite(t["stop_step"]) or 0),
             "objective": finite(t["objective"]), "metric": finite(t["value"]),
             "revived_from_step": finite(t.get("revived_from_step"))}
            for t in sweep.trials.to_dict("records")]
    configs = [{"rank": None if c["rank"] != c["rank"] else int(c["rank"]),
                "key": c["key"], "config": sweep.configs.get(c["key"], {}),
                "state": c["state"], "seeds": int(c["seeds"]),
                "judged_on_all_seeds": bool(c["judged_on_all_seeds"]),
                "metric": finite(c["value"]), "std": finite(c["std"]),
                "values": [finite(v) for v in c["values"]], "seed_list": c["seed_list"],
                "objective": finite(c["objective"])}
               for c in sweep.configurations.to_dict("records")]
    if sweep.pareto:
        for x, c in zip(configs, sweep.configurations.to_dict("records")):
            x.update(metric_2=finite(c["value_2"]), objective_2=finite(c["objective_2"]),
                     front=None if c["front"] != c["front"] else int(c["front"]))
    counts = {r: sum(x["state"] == r for x in rows) for r in (UNFINISHED,) + ENDED}
    best = next((c for c in configs if c["rank"] == 1), None)
    budget = dict(sweep.budget)
    if "steps" in budget:
        budget["steps_spent"] = sweep.steps_spent()
        budget["steps_left"] = max(0, budget["steps"] - budget["steps_spent"])
    if "hours" in budget:
        budget["hours_spent"] = meta.spent_seconds() / 3600
        budget["hours_left"] = max(0.0, budget["hours"] - budget["hours_spent"])
    return {"sweep": spec["name"], "dir": str(root), "trainer": spec["trainer"],
            "dataset": spec["dataset"], "metric": sweep.metric, "mode": sweep.mode,
            "features": features.space(spec.get("features")),
            "trials_planned": meta.trials_in_force(spec.get("trials")),
            "seeds": dict(sweep.seeds), "budget": budget, "configurations": len(configs),
            "runs": len(rows), "steps_spent": sweep.steps_spent(), "counts": counts,
            "revived": sum(r["revived_from_step"] is not None for r in rows),
            "best": best, "study_name": meta.study_name,
            "study_storage": study.describe(root, meta), "ranking": configs, "trials": rows,
            "damaged": sweep.damage, "driver_runs": [r.to_json() for r in meta.runs],
            **_pareto(sweep, configs)}


def _pareto(sweep, configs: list[dict]) -> dict:
    """What a two-objective sweep adds: both objectives and the front ({} for one)."""
    if not sweep.pareto:
        return {}
    front = sorted((c for c in configs if c["front"] == 0),
                   key=lambda c: ranking.key(c["metric"], sweep.modes[0]))
    return {"metrics": list(sweep.metrics), "modes": list(sweep.modes), "front": front}


def format_status(s: dict) -> str:
    c = s["counts"]
    ended = ", ".join(f"{c[r]} {r}" for r in ENDED if c[r]) or "none"
    if s.get("revived"):
        ended += f" ({s['revived']} of them trained on after collapsing: revive)"
    planned = "" if s["trials_planned"] is None else f" of {s['trials_planned']}"
    seeds = s["seeds"]
    objective = (f"objective {s['metric']} ({s['mode']})" if "front" not in s else
                 "objectives " + " and ".join(f"{m} ({d})" for m, d in zip(s["metrics"],
                                                                           s["modes"])))
    lines = [f"sweep {s['sweep']}: {s['trainer']} on {dataset_label(s['dataset'])}, {objective}  "
             f"[{s['dir']}]",
             f"configurations: {s['configurations']}{planned}, judged on up to "
             f"{seeds['count']} seed(s) by the {seeds['statistic']}; runs: {s['runs']} — "
             f"{c['unfinished']} running or interrupted; ended: {ended}"]
    if s["metric"] == "fid" or s.get("features") != features.space(None):
        lines.append(f"fid, precision/recall, density/coverage measured in: {s['features']}")
    b = s["budget"]
    if "steps" in b:
        lines.append(f"budget: {b['steps_spent']} of {b['steps']} training steps spent, "
                     f"{b['steps_left']} left")
    if "hours" in b:
        lines.append(f"budget: {b['hours_spent']:.2f} of {b['hours']:g} hours spent, "
                     f"{b['hours_left']:.2f} left")
    if b.get("finish_leaders"):
        lines.append("budget: finish_leaders (no new configuration once what is left pays only "
                     "for the leaders' remaining seeds)")
    if "front" in s:
        lines += _front_lines(s)
    elif s["best"]:
        best = s["best"]
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(best["config"].items()))
        spread = "" if best["std"] is None else f" ± {_fmt(best['std'])}"
        judged = ("" if best["judged_on_all_seeds"] else
                  f"; judged on {best['seeds']} of {seeds['count']} seeds only")
        lines.append(f"best {s['metric']}: {_fmt(best['metric'])}{spread} over seeds "
                     f"{', '.join(map(str, best['seed_list']))} "
                     f"({', '.join(_fmt(v) for v in best['values'])}) (config {best['key']}, "
                     f"{best['state']}{judged})")
        lines.append(f"  {params}")
        for r in [x for x in s["ranking"] if x["rank"] and x["rank"] > 1][:4]:
            lines.append(f"  #{r['rank']}: {_fmt(r['metric'])} over {r['seeds']} seed(s) "
                         f"(config {r['key']})")
    else:
        lines.append("best: no configuration has completed yet")
    stopped = [r for r in s["trials"] if r["state"] not in (UNFINISHED, layout.COMPLETED)]
    for r in stopped[:10]:
        lines.append(f"  stopped: config {r['key']} seed {r['seed']} {r['state']} at step "
                     f"{r['step']}")
    if len(stopped) > 10:
        lines.append(f"  ... and {len(stopped) - 10} more stopped (see --json)")
    lines += [damage_line(n) for n in s["damaged"]]
    lines.append(f"optuna study {s['study_name']} in {s['study_storage']}")
    last = (s.get("driver_runs") or [{}])[-1]
    if last.get("versions"):
        v = last["versions"]
        lines.append(f"last driver run {last.get('name', '')}: gansweep {v.get('gansweep')}"
                     + (f" @ {v['commit']}" if v.get("commit") else "")
                     + "".join(f", {k} {v[k]}" for k in ("python", "torch", "ray", "optuna")
                               if k in v)
                     + f"; {len(last.get('nodes') or {})} node(s) trained runs")
    return "\n".join(lines)


def _front_lines(s: dict) -> list[str]:
    """Two objectives: every configuration on the Pareto front with both values, ordered by
    the first objective; the knee (what `train --from` trains by default) marked."""
    if not s["front"]:
        return ["Pareto front: no configuration has completed yet"]
    m1, m2 = s["metrics"]
    seeds = s["seeds"]
    lines = [f"Pareto front ({len(s['front'])} configuration(s); {m1} {s['modes'][0]}, "
             f"{m2} {s['modes'][1]}; * the knee, which train --from picks by default):"]
    for c in s["front"]:
        knee = "*" if s["best"] and c["key"] == s["best"]["key"] else " "
        judged = "" if c["judged_on_all_seeds"] else f" of {seeds['count']}"
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(c["config"].items()))
        lines.append(f" {knee} {m1} {_fmt(c['metric'])}, {m2} {_fmt(c['metric_2'])} over "
                     f"{c['seeds']}{judged} seed(s) (config {c['key']}): {params}")
    return lines


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def as_json(s: dict) -> str:
    return json.dumps(s, indent=1, default=str)
