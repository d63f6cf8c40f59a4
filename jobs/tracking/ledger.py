"""SWEEP_DIR/tracking/TRACKER-ID.json: what one tracker was sent, run by run, and which runs
wait for it (it was down).

For MLflow the tracker itself is the truth (each run's tags say how far it was logged) and the
ledger only spares asking it again about runs whose end it already has (so it is written when
a run's end is logged, not at every report). W&B cannot be asked
in offline mode, so for it the ledger is the truth. Written with the sweep directory's one
durable write: a kill leaves the previous ledger or the new one, never a torn one.
"""
from __future__ import annotations

import hashlib
import json

from gansweep.analysis import durable, layout


class Ledger:
    def __init__(self, root, tracker: str, identity: str):
        digest = hashlib.sha1(identity.encode()).hexdigest()[:8]
        self.path = layout.sweep_path(root) / layout.TRACKING / f"{tracker}-{digest}.json"
        self.identity = identity
        fs, where = layout.filesystem(str(self.path))
        data = durable.read(fs, where)
        try:
            saved = json.loads(data) if data else {}
        except ValueError:  # written whole or not at all; a foreign file starts afresh
            saved = {}
        self.runs: dict[str, dict] = dict(saved.get("runs") or {})
        self.pending: set[str] = set(saved.get("pending") or [])

    def entry(self, key: str) -> dict:
        return dict(self.runs.get(key) or {})

    def ended(self, key: str) -> bool:
        """Its result was logged (a revival that rewrites it is seen when the run reports)."""
        return bool(self.runs.get(key, {}).get("finished"))

    def save(self) -> None:
        layout.write_file(self.path, json.dumps(
            {"tracker": self.identity, "runs": self.runs, "pending": sorted(self.pending)},
            indent=1).encode())
