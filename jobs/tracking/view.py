"""What a tracker is given for one run: read from its trial store entry, never from Ray Tune.

The store is the truth a resumed sweep goes on from (a run keeps its key whatever Tune trial
trains it), so a tracker fed from it logs each run once, however many Tune trials, driver runs
or `gansweep track` calls it takes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from gansweep.analysis import layout
from gansweep.analysis.layout import TrialStore
from gansweep.analysis.records import RunRecord, RunResult


@dataclass(frozen=True)
class RunView:
    key: str
    record: RunRecord | None  # config.json (None: the run never wrote one)
    rows: list[dict]  # metrics.csv, numbers only, in step order
    result: RunResult | None  # None while it runs or after an interruption
    figures: list[tuple[int, str]] = field(default_factory=list)  # (step, name in the entry)
    retrained: str | None = None  # why it trained again from step 0 (a damage note)

    @property
    def config_key(self) -> str | None:
        r = self.record
        if r is None or r.trainer is None:
            return None
        return layout.config_key(r.trainer, r.dataset, r.config, r.steps)

    @property
    def name(self) -> str:
        seed = "?" if self.record is None else self.record.seed
        return f"{(self.config_key or self.key)[:8]}-seed{seed}"

    def params(self) -> dict[str, str]:
        """The resolved configuration and what else makes the run: strings, as trackers keep
        parameters."""
        r = self.record
        if r is None:
            return {}
        out = {k: _text(v) for k, v in sorted(r.config.items())}
        out.update(seed=_text(r.seed), steps=_text(r.steps), trainer=_text(r.trainer),
                   dataset=_text(r.dataset))
        return out

    def final(self) -> dict[str, float]:
        """The result's final scores (finite numbers only: a tracker cannot plot the rest;
        the stop reason says why a run ended diverged)."""
        if self.result is None:
            return {}
        return {k: v for k, v in (_number(x) for x in self.result.final.items())
                if v is not None and k != "step"}


def _text(v) -> str:
    import json

    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)


def _number(item):
    k, v = item
    if isinstance(v, bool) or v in ("True", "False"):
        return k, float(v in (True, "True"))
    try:
        x = float(v)
    except (TypeError, ValueError):
        return k, None
    return k, x if math.isfinite(x) else None


def rows_of(data: bytes | None) -> list[dict]:
    """metrics.csv as rows of finite numbers (flags as 0/1), one per step, in step order."""
    header, rows = layout.metrics_rows(data)
    out = {}
    for r in rows:
        row = {k: v for k, v in (_number(kv) for kv in zip(header, r)) if v is not None}
        if "step" in row:
            out[int(row.pop("step"))] = row
    return [{"step": s, **out[s]} for s in sorted(out)]


def view(store: TrialStore, key: str, notes: list[dict] | None = None) -> RunView:
    """The run `key` as its store entry has it now; `notes`: the sweep's damage notes."""
    retrained = None
    for n in notes or []:
        if n.get("key") == key and n.get("file") == layout.STATE:
            retrained = (f"checkpoint {layout.STATE} was unreadable ({n.get('reason')}); kept "
                         f"as {n.get('kept_as')}, the run trained again from step 0")
    return RunView(key=key, record=store.record(key), rows=rows_of(store.read(key, layout.METRICS)),
                   result=store.result(key), figures=store.figures(key), retrained=retrained)
