"""MLflow: a parent run for the sweep, one nested child run per trial-store key.

Everything that makes a sync idempotent is kept in MLflow itself, so a resumed sweep, a
`gansweep track` or another machine's driver finds it there:

- the parent is found by its tag `gansweep.sweep_id` (a digest of the sweep's identity), a
  child by `gansweep.key` under the parent (`mlflow.parentRunId`), both set when the run is
  created, in the same request;
- how far a child's metrics went is its tag `gansweep.logged_step`, written in the SAME
  `log_batch` as the rows it covers (MLflow's batch is one transaction in its stores), so a
  crash cannot leave rows logged and the tag behind, or the other way round;
- the final scores go in one batch with the tag `gansweep.finished` (the result's time), the
  parameters with `gansweep.params`; a figure is uploaded once (the run's artifact list says).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gansweep.analysis.layout import FAILED, TrialStore
from gansweep.jobs.tracking.view import RunView

T = "gansweep."
# log_batch takes up to 1000 metrics, 100 params and 100 tags a request (MLflow's limits)
METRICS_PER_BATCH, PARAMS_PER_BATCH = 900, 100


class MlflowTracker:
    name = "mlflow"

    def __init__(self, cfg: dict, sweep: dict):
        self.uri, self.experiment = cfg["uri"], cfg["experiment"]
        self.sweep = sweep  # name, id, dir
        self.client = None
        self.parent: str | None = None
        self.children: dict[str, _Seen] = {}  # key -> its child run, tags as last seen
        self.uploaded: dict[str, set[str]] = {}  # key -> figure names the run has
        # keys whose last sync failed part-way: a request may have reached MLflow all the
        # same, so their run and tags are read again from MLflow, not from this cache
        self.doubt: set[str] = set()

    @property
    def identity(self) -> str:
        return f"mlflow {self.uri} experiment {self.experiment}"

    def open(self) -> None:
        # A tracker that is down must cost the sweep seconds, not MLflow's default minutes of
        # retries: one try, a short timeout (the sweep retries later itself).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
        # MLflow prints two lines of links whenever a run ends: one per run of the sweep
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                exp_id = client.create_experiment(self.experiment)
            except Exception:  # noqa: BLE001 - made meanwhile by another driver
                exp = client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
        self.exp_id = exp_id
        found = client.search_runs([exp_id], f"tags.`{T}sweep_id` = '{self.sweep['id']}' "
                                   f"and tags.`{T}role` = 'sweep'", max_results=1)
        if found:
            parent = found[0].info.run_id
            client.update_run(parent, status="RUNNING")
        else:
            parent = client.create_run(exp_id, run_name=self.sweep["name"], tags={
                f"{T}sweep": self.sweep["name"], f"{T}sweep_id": self.sweep["id"],
                f"{T}role": "sweep", f"{T}dir": self.sweep["dir"]}).info.run_id
        children, token = {}, None
        while True:  # every child once, a page at a time
            page = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent}'",
                                      max_results=1000, page_token=token)
            children.update({r.data.tags.get(f"{T}key"): _Seen(r.info.run_id, dict(r.data.tags))
                             for r in page})
            token = page.token
            if not token:
                break
        self.client, self.parent, self.children = client, parent, children

    def _child(self, v: RunView):
        run = self.children.get(v.key)
        if run is None and v.key in self.doubt:  # a request failed: ask MLflow what it has
            found = self.client.search_runs(
                [self.exp_id], f"tags.`mlflow.parentRunId` = '{self.parent}' and "
                f"tags.`{T}key` = '{v.key}'", max_results=1)
            run = _Seen(found[0].info.run_id, dict(found[0].data.tags)) if found else None
        if run is None:
            tags = {"mlflow.parentRunId": self.parent, f"{T}key": v.key,
                    f"{T}sweep": self.sweep["name"], f"{T}sweep_id": self.sweep["id"],
                    f"{T}role": "run"}
            if v.record is not None:
                tags.update({f"{T}config_key": v.config_key or "", f"{T}seed": str(v.record.seed)})
            made = self.client.create_run(self.exp_id, run_name=v.name, tags=tags)
            run = _Seen(made.info.run_id, dict(made.data.tags))
        self.doubt.discard(v.key)
        self.children[v.key] = run
        return run

    def sync(self, v: RunView, entry: dict, store: TrialStore) -> tuple[dict, bool]:
        """Log what the run's MLflow child lacks. Returns the ledger's entry (only whether
        its end was logged: MLflow's tags hold the rest) and whether anything was sent."""
        if v.record is None and not v.rows and v.result is None:
            return entry, False  # nothing written yet (a trial that failed before its first write)
        try:
            return self._sync(v, store)
        except BaseException:
            self.children.pop(v.key, None)
            self.uploaded.pop(v.key, None)
            self.doubt.add(v.key)
            raise

    def _sync(self, v: RunView, store: TrialStore) -> tuple[dict, bool]:
        from mlflow.entities import Metric, Param, RunTag

        run = self._child(v)
        rid, tags = run.run_id, run.tags  # tags: updated as each write succeeds
        now = _ms()
        sent = [False]

        def batch(metrics=(), params=(), new_tags=None):
            sent[0] = True
            self.client.log_batch(rid, metrics=list(metrics), params=list(params),
                                  tags=[RunTag(k, str(x)) for k, x in (new_tags or {}).items()])
            tags.update(new_tags or {})

        if v.record is not None and tags.get(f"{T}params") != "1":
            params = [Param(k, x[:6000]) for k, x in v.params().items()]
            for i in range(0, len(params), PARAMS_PER_BATCH):
                last = i + PARAMS_PER_BATCH >= len(params)
                batch(params=params[i:i + PARAMS_PER_BATCH],
                      new_tags={f"{T}params": "1"} if last else None)
        if v.retrained and tags.get(f"{T}retrained_from_step_0") != v.retrained:
            batch(new_tags={f"{T}retrained_from_step_0": v.retrained})
        logged = int(tags.get(f"{T}logged_step", -1))
        chunk: list = []
        for row in (r for r in v.rows if r["step"] > logged):
            ms = [Metric(k, x, now, row["step"]) for k, x in row.items() if k != "step"]
            if chunk and len(chunk) + len(ms) > METRICS_PER_BATCH:
                batch(chunk, new_tags={f"{T}logged_step": chunk[-1].step})
                chunk = []
            chunk += ms
            logged = row["step"]
        if chunk:
            batch(chunk, new_tags={f"{T}logged_step": logged})
        elif logged > int(tags.get(f"{T}logged_step", -1)):  # rows with no number in them
            batch(new_tags={f"{T}logged_step": logged})
        sent[0] |= self._figures(rid, v, store)
        r = v.result
        if r is not None and tags.get(f"{T}finished") != str(r.finished):
            final = [Metric(f"final/{k}", x, now, r.stop_step) for k, x in v.final().items()]
            batch(final[:METRICS_PER_BATCH], new_tags={
                f"{T}stop_reason": r.stop_reason, f"{T}stop_step": r.stop_step,
                f"{T}objective": r.objective, f"{T}finished": r.finished})
            self.client.set_terminated(rid, "FAILED" if r.stop_reason == FAILED else "FINISHED")
        return ({"finished": r.finished} if r is not None else {}), sent[0]

    def _figures(self, rid: str, v: RunView, store: TrialStore) -> bool:
        """Upload the figures the run lacks; whether there were any."""
        if not v.figures:
            return False
        have = self.uploaded.get(v.key)
        if have is None:  # asked once per run and driver; then kept here
            have = {Path(a.path).name for a in self.client.list_artifacts(rid, "figures")}
            self.uploaded[v.key] = have
        todo = [(s, n) for s, n in v.figures if Path(n).name not in have]
        if not todo:
            return False
        with tempfile.TemporaryDirectory() as tmp:
            for _, name in todo:
                data = store.read(v.key, name)
                if data is None:
                    continue
                path = Path(tmp) / Path(name).name
                path.write_bytes(data)
                self.client.log_artifact(rid, str(path), "figures")
                have.add(path.name)
        return True

    def close(self) -> None:
        """The sweep's parent run ends with each driver run (the next one sets it RUNNING)."""
        if self.client is not None and self.parent is not None:
            self.client.set_terminated(self.parent, "FINISHED")


@dataclass
class _Seen:
    """A child run as this driver knows it: its id, and its tags after our writes."""

    run_id: str
    tags: dict


def _ms() -> int:
    import time

    return int(time.time() * 1000)
