"""Experiment trackers (docs/tracking.md), against real parts: a real `mlflow server` on
127.0.0.1, W&B in offline mode read back from the .wandb files it writes, real drivers in their
own processes killed with SIGKILL and resumed. Three sweeps in all, tiny ones."""
from __future__ import annotations

import collections
import glob
import json
import signal
import struct
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT, run_cli, tiny_spec
from tests.faults import Driver, results, wait_for, write_spec
from tests.servers import free_port, mlflow_server  # noqa: F401 - module fixture

pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

STEPS, EVERY, SCORE = 120, 20, 60


def client(server):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=server.uri)


def sweep_runs(server, experiment: str) -> tuple[list, dict]:
    """The sweep's parent runs, and its child runs by trial-store key (each key's list)."""
    c = client(server)
    exp = c.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    runs = c.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("gansweep.role") == "sweep"]
    children = collections.defaultdict(list)
    for r in runs:
        if r.data.tags.get("gansweep.role") == "run":
            children[r.data.tags["gansweep.key"]].append(r)
    return parents, children


def history_steps(server, run_id: str, metric: str = "loss_g") -> list[int]:
    return sorted(m.step for m in client(server).get_metric_history(run_id, metric))


def store_config(sweep, key: str) -> dict:
    return json.loads((sweep / "trials" / key / "config.json").read_text())


def params_of(record: dict) -> dict:
    """What gansweep logs as a run's parameters: its resolved configuration and seed, steps,
    trainer and dataset, as strings (JSON for what is not a string)."""
    out = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True)
           for k, v in record["config"].items()}
    for k in ("seed", "steps", "trainer", "dataset"):
        v = record[k]
        out[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return out


def warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if "[gansweep] tracking:" in line]


def test_mlflow_sigkill_and_resume_logs_each_run_once(tmp_path, mlflow_server):  # noqa: F811
    """SIGKILL the driver once MLflow has a run's first reports, resume: one parent, one
    child per key, every step once, params = config.json, the end and a figure logged."""
    sweep = tmp_path / "tiny"
    experiment = f"kill-{tmp_path.name}"
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(
        tmp_path, trials=2, steps=STEPS, report_every=EVERY, score_every=SCORE,
        early_stop={"collapse": False},
        tracking={"mlflow": {"uri": mlflow_server.uri, "experiment": experiment}}))
    driver = Driver("submit", str(spec), log=tmp_path / "submit.log")

    def logged_and_running():
        c = client(mlflow_server)
        exp = c.get_experiment_by_name(experiment)
        if exp is None:
            return False
        runs = c.search_runs([exp.experiment_id], "tags.`gansweep.role` = 'run'")
        return any(r.data.tags.get("gansweep.logged_step") for r in runs) and \
            len(results(sweep)) < 2

    wait_for(logged_and_running, "a run logged to MLflow while the sweep runs",
             driver=driver, poll=0.2)
    driver.kill(signal.SIGKILL)
    assert len(results(sweep)) < 2, "the kill came after every run had ended"
    resumed = Driver("resume", str(sweep), log=tmp_path / "resume.log")
    assert resumed.wait() == 0, resumed.output()[-3000:]
    assert not warnings(driver.output() + resumed.output())

    parents, children = sweep_runs(mlflow_server, experiment)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["gansweep.sweep"] == "tiny"
    final = results(sweep)
    assert len(final) == 2 and set(children) == set(final)
    for key, runs in children.items():
        assert len(runs) == 1, (key, len(runs))  # exactly one child per key
        run = client(mlflow_server).get_run(runs[0].info.run_id)
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        record = store_config(sweep, key)
        assert tags["gansweep.seed"] == str(record["seed"])
        assert run.data.params == params_of(record)
        # every report once, none twice after the resume
        for metric in ("loss_g", "mode_diversity", "modes_captured"):
            assert history_steps(mlflow_server, run.info.run_id, metric) == \
                list(range(EVERY, STEPS + 1, EVERY)), (key, metric)
        assert tags["gansweep.stop_reason"] == final[key]["stop_reason"] == "completed"
        assert tags["gansweep.logged_step"] == str(STEPS)
        assert run.data.metrics["final/modes_captured"] == final[key]["final"]["modes_captured"]
        assert run.info.status == "FINISHED"
        figures = [a.path for a in client(mlflow_server).list_artifacts(run.info.run_id,
                                                                        "figures")]
        assert f"figures/step-{STEPS:08d}.png" in figures
        assert len(figures) == len(set(figures))
        # the figures are the ones the trial store keeps
        assert sorted(p.split("/")[-1] for p in figures) == sorted(
            p.name for p in (sweep / "trials" / key / "figures").glob("*.png"))

    # A run whose checkpoint the store set aside as damaged (it trains again from step 0)
    # says so in its tracker run; syncing again logs no step twice.
    import gansweep
    from gansweep.analysis.layout import STATE, TrialStore

    key = sorted(final)[0]
    TrialStore.of(sweep, repair=True).damaged(key, STATE, "torn by a test")
    assert gansweep.track(sweep, log=lambda *_: None) == {
        f"mlflow {mlflow_server.uri} experiment {experiment}": 0}
    run = client(mlflow_server).get_run(children[key][0].info.run_id)
    said = run.data.tags["gansweep.retrained_from_step_0"]
    assert "torn by a test" in said and "state.pt.damaged-" in said
    assert history_steps(mlflow_server, run.info.run_id) == list(range(EVERY, STEPS + 1, EVERY))


# ---- W&B offline: the .wandb files read back -------------------------------------------------

def wandb_records(path: str):
    """The protobuf Records of a .wandb file: W&B's LevelDB-style log (a 7-byte header, then
    32 KiB blocks of chunks <crc32:4><length:2><type:1><data>, type FULL=1 FIRST=2 MIDDLE=3
    LAST=4). wandb 0.31 no longer ships a Python reader (`wandb.sdk.internal.datastore`)."""
    from wandb.proto import wandb_internal_pb2 as pb

    raw = open(path, "rb").read()
    assert raw[:4] == b":W&B", path
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(raw):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        if kind == 0 and n == 0:
            pos += left
            continue
        data = raw[pos + 7:pos + 7 + n]
        pos += 7 + n
        buf = data if kind in (1, 2) else buf + data
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            yield rec
            buf = b""


def wandb_runs(wandb_dir) -> dict[str, dict]:
    """Per W&B run id, over every offline-run directory: its steps logged (all directories
    together), its config, group, figures and summary."""
    runs: dict[str, dict] = {}
    for path in sorted(glob.glob(f"{wandb_dir}/wandb/offline-run-*/*.wandb")):
        run = None
        for rec in wandb_records(path):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                run = runs.setdefault(rec.run.run_id, {"steps": [], "config": {}, "figures": [],
                                                       "summary": {}, "dirs": 0})
                run["dirs"] += 1
                run["group"] = rec.run.run_group
                run["config"].update({i.key: json.loads(i.value_json)
                                      for i in rec.run.config.update})
            elif kind == "config" and run is not None:
                run["config"].update({i.key: json.loads(i.value_json)
                                      for i in rec.config.update})
            elif kind == "history" and run is not None:
                items = {i.key or "/".join(i.nested_key): i.value_json for i in rec.history.item}
                run["steps"].append(int(rec.history.step.num))
                if any(k.split("/")[0] == "figure" for k in items):  # wandb.Image, nested
                    run["figures"].append(int(rec.history.step.num))
            elif kind == "summary" and run is not None:
                run["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                       for i in rec.summary.update})
    for run in runs.values():
        run["config"] = {k: v.get("value", v) if isinstance(v, dict) else v
                         for k, v in run["config"].items() if k != "_wandb"}
    return runs


def test_tracker_down_then_gansweep_track_and_wandb_offline_resume(tmp_path, mlflow_server):  # noqa: F811
    """MLflow points at a closed port, W&B is offline. The sweep, stopped with Ctrl-C (SIGINT)
    while W&B has a run's first reports and resumed, completes (exit 0) saying MLflow's failure
    in one line per driver run; W&B holds each step once over the offline-run directories of
    the same run id. Pointed at a real server, `gansweep track` logs every run to MLflow, and
    a second track logs nothing."""
    from gansweep.jobs.tracking.wandb_tracker import run_id
    from tests.faults import running

    closed = f"http://127.0.0.1:{free_port()}"
    experiment = f"down-{tmp_path.name}"
    wandb_dir = tmp_path / "wb"
    wandb_dir.mkdir()
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir), "WANDB_SILENT": "true"}
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(
        tmp_path, trials=2, steps=STEPS, report_every=EVERY, score_every=SCORE,
        early_stop={"collapse": False},
        tracking={"mlflow": {"uri": closed, "experiment": experiment},
                  "wandb": {"project": "gansweep-test", "mode": "offline"}}))
    sweep = tmp_path / "tiny"

    def wandb_has_a_running_run():
        for path in sweep.glob("tracking/wandb-*.json"):
            ledger = json.loads(path.read_text())
            if any(e.get("step", -1) >= EVERY and not e.get("finished")
                   for e in ledger["runs"].values()):
                return True
        return False

    driver = Driver("submit", str(spec), log=tmp_path / "submit.log", env=env)
    wait_for(wandb_has_a_running_run, "a W&B run logged while it trains", driver=driver,
             poll=0.2)
    driver.kill(signal.SIGINT)
    assert driver.proc.returncode == 130, driver.output()[-3000:]
    interrupted = set(running(sweep))
    said = warnings(driver.output())
    assert len(said) == 1, said
    assert "mlflow" in said[0] and "gansweep track" in said[0]
    resumed = Driver("resume", str(sweep), log=tmp_path / "resume.log", env=env)
    assert resumed.wait() == 0, resumed.output()[-3000:]
    assert len(warnings(resumed.output())) == 1
    final = results(sweep)
    assert len(final) == 2

    # W&B: one run per key, grouped by the sweep, each step once over all offline directories
    meta = json.loads((sweep / "sweep.json").read_text())
    import hashlib

    sweep_id = hashlib.sha1(meta["study_name"].encode()).hexdigest()[:16]
    runs = wandb_runs(wandb_dir)
    assert set(runs) == {run_id(sweep_id, k) for k in final}
    steps = list(range(EVERY, STEPS + 1, EVERY))
    for key in final:
        run = runs[run_id(sweep_id, key)]
        assert run["steps"] == steps, (key, run["steps"])
        # a run the interruption cut is continued under the same id, in a directory of its own
        assert run["dirs"] == (2 if key in interrupted else 1), (key, interrupted)
        assert run["group"] == "tiny"
        record = store_config(sweep, key)
        assert {k: run["config"][k] for k in record["config"]} == record["config"]
        assert run["config"]["seed"] == record["seed"]
        assert run["summary"]["stop_reason"] == "completed"
        assert run["figures"] == [SCORE, STEPS]
    assert interrupted, "the interruption came after every run had ended"

    # MLflow is back (the spec now names a server that answers): track logs every run once
    frozen = sweep / "spec.yaml"
    frozen.write_text(frozen.read_text().replace(closed, mlflow_server.uri))
    wandb_files = sorted(glob.glob(f"{wandb_dir}/wandb/offline-run-*"))
    tracked = run_cli("track", str(sweep), env=env)
    assert "2 run(s) updated, 0 pending" in tracked.stdout
    import gansweep

    lines: list[str] = []
    assert gansweep.track(sweep, log=lines.append) == {
        f"mlflow {mlflow_server.uri} experiment {experiment}": 0,
        "wandb -/gansweep-test": 0}
    assert all("0 run(s) updated" in line for line in lines), lines
    assert sorted(glob.glob(f"{wandb_dir}/wandb/offline-run-*")) == wandb_files
    parents, children = sweep_runs(mlflow_server, experiment)
    assert len(parents) == 1 and set(children) == set(final)
    for runs_ in children.values():
        assert len(runs_) == 1
        assert history_steps(mlflow_server, runs_[0].info.run_id) == steps
        assert runs_[0].data.tags["gansweep.stop_reason"] == "completed"


# ---- bad input: refused before anything is made ----------------------------------------------

def test_a_secret_in_the_uri_is_refused_without_echoing_it(tmp_path):
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(
        tmp_path, tracking={"mlflow": "http://alice:s3cr3t-pw@mlflow.lab:5000"}))
    proc = run_cli("submit", str(spec), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "tracking.mlflow" in proc.stderr and "MLFLOW_TRACKING_PASSWORD" in proc.stderr
    assert "s3cr3t-pw" not in proc.stdout + proc.stderr
    assert not (tmp_path / "tiny").exists()


@pytest.mark.parametrize("tracking, says", [
    ({"neptune": {"project": "p"}}, "tracking: unknown tracker neptune"),
    ({"mlflow": "ftp://host/x"}, "tracking.mlflow: ftp:// is not"),
    ({"mlflow": "127.0.0.1:5000"}, "tracking.mlflow: give the tracking server's URI"),
    ({"wandb": {"project": "p", "mode": "sometimes"}}, "tracking.wandb.mode"),
    ({"wandb": {"project": "p", "api_key": "k"}}, "WANDB_API_KEY"),
    ({"wandb": {"mode": "offline"}}, "tracking.wandb.project"),
    ("http://127.0.0.1:5000", "tracking: write a mapping"),
])
def test_bad_tracking_is_refused_naming_the_key(tmp_path, tracking, says):
    from gansweep.jobs.spec import parse_spec
    from gansweep.trainers.errors import ConfigError

    with pytest.raises(ConfigError, match=None) as err:
        parse_spec(tiny_spec(tmp_path, tracking=tracking))
    assert says in str(err.value)


def test_tracking_is_normalised_and_not_in_the_fingerprint(tmp_path):
    from gansweep.jobs.spec import parse_spec

    plain = parse_spec(tiny_spec(tmp_path))
    tracked = parse_spec(tiny_spec(tmp_path, tracking={"mlflow": "http://127.0.0.1:5000/"}))
    assert tracked.tracking == {"mlflow": {"uri": "http://127.0.0.1:5000",
                                           "experiment": "tiny"}}
    assert tracked.fingerprint() == plain.fingerprint()  # a resume may add or change trackers
    again = parse_spec(yaml.safe_load(yaml.safe_dump(tracked.to_dict())))  # spec.yaml reads
    assert again.tracking == tracked.tracking


def test_a_missing_tracker_package_is_named(tmp_path):
    """mlflow made unimportable the way Python marks a module absent (sys.modules[name] =
    None), in a fresh process running the real CLI."""
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(
        tmp_path, tracking={"mlflow": "http://127.0.0.1:5000"}))
    code = ("import sys; sys.modules['mlflow'] = None\n"
            "from gansweep.jobs.cli import main\n"
            f"sys.exit(main(['submit', {str(spec)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert ("tracking.mlflow: needs the mlflow package; pip install 'gansweep[mlflow]'"
            in proc.stderr)
    assert not (tmp_path / "tiny").exists()
