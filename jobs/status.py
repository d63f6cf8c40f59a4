"""`gansweep status SWEEP_DIR`: trials by state and the best configuration so far.

Reads only files (the frozen spec and the trial store), so it works while the sweep runs,
after it ends, and after it was interrupted; each configuration counts once, whichever Ray
trial ids it ran under.
"""
from __future__ import annotations

import json
from pathlib import Path

from analysis import layout
from analysis.layout import ENDED, UNFINISHED
from analysis.sweeps import finite, load_sweep
from jobs import sweep_dir as sd


def collect(root: str | Path) -> dict:
    """The sweep's state as a plain dict (what `--json` prints), from `load_sweep`'s table.

    Rows come best first (`load_sweep`'s ranking); `metric` is the spec metric as measured
    (the last report's while a configuration runs) and `objective` what the searcher was told,
    null while a configuration runs and for the +-inf penalty of a collapsed or diverged run
    (its `state` says which)."""
    from jobs import study

    root = layout.sweep_path(root)
    spec, meta = sd.read_frozen(root)  # refuses a directory whose spec was edited
    sweep = load_sweep(root)
    rows = [{"key": t["key"], "config": sweep.configs.get(t["key"], {}), "state": t["state"],
             "step": int(finite(t["stop_step"]) or 0), "objective": finite(t["objective"]),
             "metric": finite(t["value"])}
            for t in sweep.trials.to_dict("records")]
    counts = {r: sum(x["state"] == r for x in rows) for r in (UNFINISHED,) + ENDED}
    # Ranked by the metric itself (completed before stopped on a tie): the objective of a
    # collapsed or diverged run is a penalty for the searcher, not a measurement.
    best = rows[0] if len(sweep.ranked()) else None
    return {"sweep": spec["name"], "dir": str(root), "trainer": spec["trainer"],
            "dataset": spec["dataset"], "metric": sweep.metric, "mode": sweep.mode,
            "trials_planned": spec["trials"], "configurations": len(rows), "counts": counts,
            "best": best, "study_name": meta["study_name"],
            "study_storage": study.describe(root, meta), "trials": rows}


def format_status(s: dict) -> str:
    c = s["counts"]
    ended = ", ".join(f"{c[r]} {r}" for r in ENDED if c[r]) or "none"
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
    stopped = [r for r in s["trials"] if r["state"] not in (UNFINISHED, layout.COMPLETED)]
    for r in stopped[:10]:
        lines.append(f"  stopped: config {r['key']} {r['state']} at step {r['step']}")
    if len(stopped) > 10:
        lines.append(f"  ... and {len(stopped) - 10} more stopped (see --json)")
    lines.append(f"optuna study {s['study_name']} in {s['study_storage']}")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def as_json(s: dict) -> str:
    return json.dumps(s, indent=1, default=str)
