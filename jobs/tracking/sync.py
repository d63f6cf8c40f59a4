"""Bring a sweep's trackers up to date with its trial store, run by run, idempotently.

The driver syncs (jobs/tracking/callback.py), not the trials: credentials and a route to the
tracker are needed only where the driver runs, and the trial store already holds everything a
run logs. A sync logs only what the tracker does not have yet (each tracker knows how far it
got: jobs/tracking/mlflow_tracker.py, wandb_tracker.py), so calling it again -- after a
resume, from `gansweep track` -- logs nothing twice.

A tracker that fails (down, refused, misconfigured) does not stop the sweep: the failure is
said once, in one line naming the tracker and what to do, the run is marked pending in the
ledger, and the tracker is left alone for RETRY_S, doubled after each failure up to
RETRY_MAX_S (a tracker that times out must not stall the driver's loop again and again);
whatever is pending is synced at the end of the driver run, at the start of the next one, or
by `gansweep track SWEEP_DIR`.
"""
from __future__ import annotations

import hashlib
import time

from gansweep.analysis import layout
from gansweep.jobs.tracking.ledger import Ledger
from gansweep.jobs.tracking.view import view

RETRY_S, RETRY_MAX_S = 60.0, 900.0


def trackers_of(spec, root, meta) -> list:
    from gansweep.jobs.tracking.mlflow_tracker import MlflowTracker
    from gansweep.jobs.tracking.wandb_tracker import WandbTracker

    sweep = {"name": spec.name, "dir": str(root),
             # the sweep's identity: its study name is unique to its directory (name-uuid)
             "id": hashlib.sha1(str(meta.study_name).encode()).hexdigest()[:16]}
    made = {"mlflow": MlflowTracker, "wandb": WandbTracker}
    return [made[name](cfg, sweep) for name, cfg in (spec.tracking or {}).items()]


class _State:
    def __init__(self, tracker, root):
        self.tracker = tracker
        self.ledger = Ledger(root, tracker.name, tracker.identity)
        self.opened = False
        self.failed_at: float | None = None  # when it last failed (None: it answers)
        self.wait_s = RETRY_S  # how long it is left alone after a failure
        self.said = False  # its failure was said (once per driver run)


class Sync:
    def __init__(self, spec, root, meta, log=print):
        self.root, self.log = layout.sweep_path(root), log
        self.store = layout.TrialStore.of(self.root)  # reads only; the trials repair
        self.states = [_State(t, self.root) for t in trackers_of(spec, self.root, meta)]
        self.updated = {s.tracker.name: 0 for s in self.states}

    def key(self, key: str, notes: list[dict] | None = None) -> None:
        """Log what the trackers lack of run `key`."""
        v = None
        for s in self.states:
            if s.failed_at is not None and time.time() - s.failed_at < s.wait_s:
                self._pending(s, key)
                continue
            try:
                if v is None:
                    v = view(self.store, key, self._notes() if notes is None else notes)
                if not s.opened:
                    s.tracker.open()
                    s.opened = True
                entry = s.ledger.entry(key)
                new, logged = s.tracker.sync(v, entry, self.store)
                self.updated[s.tracker.name] += logged
                if new != entry or key in s.ledger.pending:  # written only when it changed
                    s.ledger.runs[key] = new
                    s.ledger.pending.discard(key)
                    s.ledger.save()
                s.failed_at, s.wait_s = None, RETRY_S
            except Exception as exc:  # noqa: BLE001 - any failure of a tracker: said, not fatal
                if s.failed_at is not None:
                    s.wait_s = min(2 * s.wait_s, RETRY_MAX_S)
                s.failed_at = time.time()
                self._pending(s, key)
                if not s.said:
                    s.said = True
                    self.log(f"[gansweep] tracking: {s.tracker.identity} failed "
                             f"({_one_line(exc)}); the sweep goes on and the runs not logged "
                             f"are kept pending in {s.ledger.path}: they are logged at the end "
                             "of this driver run, at the next resume, or by "
                             f"`gansweep track {self.root}` once the tracker answers")

    def _pending(self, s: _State, key: str) -> None:
        if key not in s.ledger.pending:
            s.ledger.pending.add(key)
            try:
                s.ledger.save()
            except OSError:
                pass  # the ledger is a cache of intent; the next sync of the key tries again

    def _notes(self) -> list[dict]:
        return self.store.damage_notes()

    def catch_up(self, every: bool = False) -> None:
        """Sync what each tracker lacks: its pending runs and every run whose end it has not
        logged (`every`: every run in the store, asking the tracker itself; `gansweep
        track`). A tracker that failed is tried once more, here."""
        for s in self.states:
            s.failed_at = None
        keys = self.store.keys()
        todo = set()
        for s in self.states:
            todo |= s.ledger.pending
            todo |= {k for k in keys if every or not s.ledger.ended(k)}
        notes = self._notes()
        for key in sorted(todo):
            if key in keys:
                self.key(key, notes)
            else:  # a pending run no longer in the store (a folder removed by hand)
                for s in self.states:
                    s.ledger.pending.discard(key)

    def close(self) -> None:
        """End this driver run's use of the trackers (open W&B runs are finished)."""
        for s in self.states:
            if not s.opened:
                continue
            try:
                s.tracker.close()
            except Exception as exc:  # noqa: BLE001
                if not s.said:
                    s.said = True
                    self.log(f"[gansweep] tracking: {s.tracker.identity} failed on close "
                             f"({_one_line(exc)})")
            s.opened = False

    def pending(self) -> dict[str, int]:
        return {s.tracker.identity: len(s.ledger.pending) for s in self.states}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300] + ("..." if len(text) > 300 else "")
