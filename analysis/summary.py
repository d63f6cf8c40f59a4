"""SWEEP_DIR/summary.json: what readers need of every ended run (its records, its curve's last
row and its bests), in one file the driver keeps (analysis/layout.py says why). A cache: each
entry, a digest, is built from the run's own records, which stay the truth; a run missing from
it is read from its files. The driver writes it (`refresh_summary`); readers only read it.
"""
from __future__ import annotations

import json
import math

from gansweep.analysis import layout, ranking
from gansweep.analysis.layout import TrialStore, sweep_path
from gansweep.analysis.records import RunRecord, RunResult, number
from gansweep.analysis.vocabulary import DIRECTIONS, LOSSES

VERSION = 2  # a summary of another version is ignored (and rewritten by a driver)
# What a digest keeps (a summary of ten thousand runs stays a few megabytes).
RECORD_KEYS = ("trainer", "dataset", "seed", "steps", "config", "created")
RESULT_KEYS = ("stop_reason", "stop_step", "objective", "time_s", "finished", "revived")
FINAL_KEYS = frozenset({"step", "time_s", "objective_2", *LOSSES, *DIRECTIONS})


def digest(record: RunRecord, result: RunResult | None, metrics: bytes | None) -> dict:
    """What a reader needs of one run, without its curve: its records, its final row (the
    result's, filled from the curve's last row: ASHA and failure records keep only some
    columns) and the best value of each vocabulary metric over the curve. Records go back
    to their dataclasses with `from_json`."""
    head, body = layout.metrics_rows(metrics)
    final, best = {}, {}
    if body:
        for j, name in enumerate(head):
            if name not in FINAL_KEYS:
                continue
            v = body[-1][j]
            final[name] = number(v) if v != "" else math.nan
            if name in DIRECTIONS:
                col = [x for x in (number(r[j]) for r in body) if math.isfinite(x)]
                if col:
                    best[name] = ranking.best(col, DIRECTIONS[name])
    if result is not None:
        final.update({k: v for k, v in result.final.items() if k in FINAL_KEYS})
    return {"record": _kept(record.to_json(), RECORD_KEYS),
            "result": None if result is None else _kept(result.to_json(), RESULT_KEYS),
            "final": final, "best": best}


def _kept(record: dict, keys: tuple[str, ...]) -> dict:
    return {k: record[k] for k in keys if k in record}


def read_digest(store: TrialStore, key: str) -> dict | None:
    """One run's digest from its own files (None: it has not written its record yet)."""
    record = store.record(key)  # a damaged record reads as absent
    if record is None:
        return None
    return digest(record, store.result(key), store.read(key, layout.METRICS))


def read_summary(root) -> dict[str, dict]:
    """The driver's summary of ended runs, key -> digest ({} when there is none yet)."""
    try:
        data = json.loads((sweep_path(root) / layout.SUMMARY).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return {}
    return data.get("runs", {})


def refresh_summary(root, summary: dict[str, dict] | None = None,
                    keys: list[str] | None = None) -> dict[str, dict]:
    """Add the ended runs the summary lacks, and write it. The driver's job: readers only
    read it. `keys`: read these again even if the summary has them (they just ended, or a
    revival rewrote their result: early_stop.collapse.revive); one without a result now (a
    revival under way) leaves the summary."""
    root = sweep_path(root)
    summary = read_summary(root) if summary is None else summary
    store = TrialStore.of(root)
    added = 0
    for key in store.keys() if keys is None else keys:
        if keys is None and key in summary:
            continue
        if not store.has_result(key):
            added += summary.pop(key, None) is not None
            continue
        d = read_digest(store, key)
        if d is not None and d["result"] is not None:
            summary[key] = d
            added += 1
    if added or not (root / layout.SUMMARY).exists():
        _write(root, summary)
    return summary


def reopen_in_summary(root, summary: dict[str, dict], key: str) -> None:
    """A revival starts: the run it trains on has not ended any more, whatever its digest
    says. Taken out now, not when the revival ends: an hour budget stops a revival without
    Tune telling any callback that it ended, and a reader would go on seeing a collapsed run
    (`early_stop.collapse.revive`)."""
    if summary.pop(key, None) is not None:
        _write(sweep_path(root), summary)


def _write(root, summary: dict[str, dict]) -> None:
    layout.write_file(root / layout.SUMMARY, json.dumps(
        layout.json_safe({"version": VERSION, "runs": summary})).encode())
