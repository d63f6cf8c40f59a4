"""Experiment trackers (MLflow, Weights & Biases): every run of a sweep logged as a tracker
run, from the driver, idempotently (docs/tracking.md).

    config.py          the spec's `tracking:` key
    view.py            what a run is, read from its trial store entry
    sync.py            logging what a tracker lacks; a tracker that is down; catching up
    ledger.py          SWEEP_DIR/tracking/: per tracker, what was logged and what is pending
    mlflow_tracker.py  a parent run per sweep, a nested child per run
    wandb_tracker.py   a run per run, grouped by sweep, resumed by a derived id
    callback.py        the Ray Tune callback that syncs a run when it reports

mlflow and wandb are imported only when a sweep with `tracking:` runs.
"""
from __future__ import annotations


class NoTracking:
    """A sweep without `tracking:`: nothing to do."""

    def callbacks(self, control) -> list:
        return []

    def finish(self) -> None:
        pass


class Tracking:
    """One driver run's trackers: runs pending from before are synced when it starts, the
    callback syncs each run as it reports, and what is still missing when an experiment ends."""

    def __init__(self, spec, root, meta, log=print):
        from gansweep.jobs.tracking.sync import Sync

        self.sync = Sync(spec, root, meta, log)
        self.sync.catch_up()
        self.sync.close()  # reopened by the first run that reports

    def callbacks(self, control) -> list:
        from gansweep.jobs.tracking.callback import Track

        return [Track(self.sync, control)]

    def finish(self) -> None:
        self.sync.catch_up()
        self.sync.close()


def for_sweep(spec, root, meta, log=print):
    return Tracking(spec, root, meta, log) if spec.tracking else NoTracking()


def track(sweep_dir, log=print) -> dict[str, int]:
    """`gansweep track SWEEP_DIR`: sync every run in the store to the spec's trackers (after
    a tracker was down, or with a tracker added to spec.yaml). Holds the driver lock, so it
    never logs beside a running driver. Returns the runs still pending per tracker."""
    from gansweep.analysis.layout import sweep_path
    from gansweep.jobs import sweep_dir as sd
    from gansweep.jobs.tracking.sync import Sync
    from gansweep.trainers.errors import ConfigError

    root = sweep_path(sweep_dir)
    spec, meta = sd.open_existing(root)
    if not spec.tracking:
        raise ConfigError(f"{root / 'spec.yaml'} has no tracking: key; add one, e.g. "
                          "tracking: {mlflow: http://127.0.0.1:5000} (it may be added to a "
                          "sweep's spec.yaml afterwards: it does not change what its runs "
                          "mean), then run gansweep track again")
    spec, meta, held = sd.lock(root, "gansweep track", log=log)
    try:
        sync = Sync(spec, root, meta, log)
        sync.catch_up(every=True)
        sync.close()
    finally:
        held.release()
    for s in sync.states:
        log(f"[gansweep] {s.tracker.identity}: {sync.updated[s.tracker.name]} run(s) updated, "
            f"{len(s.ledger.pending)} pending")
    return sync.pending()
