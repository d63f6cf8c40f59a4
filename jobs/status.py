"""`gansweep status SWEEP_DIR`: trials by state and the best configuration so far.

Reads only files (the frozen spec and the trial store), so it works while the sweep runs,
after it ends, and after it was interrupted; each configuration counts once, whichever Ray
trial ids it ran under.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from jobs import sweep_dir as sd
from trainers.store import TrialStore

REASONS = ("completed", "collapsed", "diverged", "asha", "failed")


def collect(root: str | Path) -> dict:
    root = Path(root)
    spec, meta = sd.open_existing(root)
    store = TrialStore(str(root / sd.TRIALS))
    rows = []
    for key in store.keys():
        config = store.read_json(key, "config.json")
        if config is None:  # a directory a killed trial left before writing anything
            continue
        result = store.read_json(key, "result.json")
        row = {"key": key, "config": config["config"]}
        if result is None:
            state = "unfinished"
            last = _last_metrics(store, key)
            row.update(state=state, step=last.get("step", 0), objective=last.get(spec.metric))
        else:
            row.update(state=result["stop_reason"], step=result["stop_step"],
                       objective=_num(result.get("objective")),
                       metric=_num(result["final"].get(spec.metric)))
        rows.append(row)
    counts = {r: sum(x["state"] == r for x in rows) for r in ("unfinished",) + REASONS}
    # Ranked by the metric itself: the objective of a collapsed or diverged run is a penalty
    # for the searcher, not a measurement.
    finished = [r for r in rows if r["state"] != "unfinished" and _finite(r.get("metric"))]
    best = None
    if finished:
        # On a tie a run that completed beats one that was stopped, in either direction.
        sign = 1 if spec.mode == "min" else -1
        best = min(finished, key=lambda r: (sign * r["metric"], r["state"] != "completed"))
    return {"sweep": spec.name, "dir": str(root), "trainer": spec.trainer,
            "dataset": spec.dataset, "metric": spec.metric, "mode": spec.mode,
            "trials_planned": spec.trials, "configurations": len(rows), "counts": counts,
            "best": best, "study_name": meta["study_name"], "trials": rows}


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def _last_metrics(store: TrialStore, key: str) -> dict:
    data = store.read(key, "metrics.csv")
    if not data:
        return {}
    lines = data.decode().strip().splitlines()
    if len(lines) < 2:
        return {}
    head, last = lines[0].split(","), lines[-1].split(",")
    return {k: _num(v) for k, v in zip(head, last)}


def format_status(s: dict) -> str:
    c = s["counts"]
    ended = ", ".join(f"{c[r]} {r}" for r in REASONS if c[r]) or "none"
    lines = [f"sweep {s['sweep']}: {s['trainer']} on {s['dataset']}, objective {s['metric']} "
             f"({s['mode']})  [{s['dir']}]",
             f"configurations: {s['configurations']} of {s['trials_planned']} — "
             f"{c['unfinished']} running or interrupted; ended: {ended}"]
    if s["best"]:
        b = s["best"]
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(b["config"].items()))
        lines.append(f"best {s['metric']}: {_fmt(b['metric'])} (config {b['key']}, "
                     f"{b['state']} at step {b['step']})")
        lines.append(f"  {params}")
    else:
        lines.append("best: no configuration has finished yet")
    stopped = [r for r in s["trials"] if r["state"] not in ("unfinished", "completed")]
    for r in stopped[:10]:
        lines.append(f"  stopped: config {r['key']} {r['state']} at step {r['step']}")
    if len(stopped) > 10:
        lines.append(f"  ... and {len(stopped) - 10} more stopped (see --json)")
    lines.append(f"optuna study {s['study_name']} in {Path(s['dir']) / sd.OPTUNA_DB}")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def as_json(s: dict) -> str:
    return json.dumps(s, indent=1, default=str)
