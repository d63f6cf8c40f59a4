"""Bring your own GAN: the example package (examples/lab-gan: its own trainer, an architecture
no built-in family has, and its own data loader) sweeps on a real two-node local Ray cluster
-- installed with pip, and as a plain directory shipped to the workers -- through the CLI and
the Python API, is SIGKILLed and resumed with nothing lost or repeated, and is reported beside
a built-in family."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.faults import Driver, results, tune_reports, wait_for

EXAMPLE = ROOT / "examples" / "lab-gan"
CLUSTER = """
import sys
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
print("ADDRESS", cluster.address, flush=True)
sys.stdin.read()  # until the test closes stdin
cluster.shutdown()
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The example installed with pip into a folder of its own (its entry points included),
    and a copy of its package under another name, installed nowhere."""
    tmp = tmp_path_factory.mktemp("lab")
    source = tmp / "source"
    shutil.copytree(EXAMPLE, source)
    target = tmp / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)], check=True)
    plain = tmp / "plain"
    shutil.copytree(source / "lab_gan", plain / "lab_plain")
    return {"installed": target, "plain": plain / "lab_plain", "tmp": tmp}


@pytest.fixture(scope="module")
def cluster(lab):
    """Two Ray nodes on this machine whose workers have the installed package on their path
    (as a cluster image with `pip install lab-gan` would), and not the plain copy."""
    tmp = Path("/tmp") / f"gsb{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_TMPDIR": str(tmp),
           "PYTHONPATH": str(lab["installed"])}
    proc = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=lab["tmp"],
                            start_new_session=True)
    line = proc.stdout.readline()
    assert line.startswith("ADDRESS"), line
    yield line.split()[1]
    proc.stdin.close()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    subprocess.run(["pkill", "-9", "-f", str(tmp)], check=False)


def _spec(path: Path, storage: Path, **raw) -> Path:
    base = {"trials": 2, "steps": 80, "report_every": 20, "seeds": 1, "metric": "coverage",
            "max_concurrent": 2, "early_stop": {"collapse": False}, "seed": 0,
            "storage": str(storage)}
    path.write_text(yaml.safe_dump({**base, **raw}))
    return path


def _nodes(sweep: Path) -> set[str]:
    return {json.loads(p.read_text())["node_id"] for p in sweep.glob("trials/*/config.json")}


def test_installed_package_sweeps_resumes_and_reports_through_the_cli(lab, cluster, tmp_path):
    env = {"PYTHONPATH": str(lab["installed"])}
    spec = _spec(tmp_path / "lab.yaml", tmp_path / "sweeps", name="lab", trainer="hinge-gan",
                 dataset="spiral", steps=400)
    sweep = tmp_path / "sweeps" / "lab"
    first = Driver("submit", str(spec), "--address", cluster, log=tmp_path / "first.log",
                   cwd=tmp_path, env=env)
    wait_for(lambda: list(sweep.glob("trials/*/metrics.csv")), "a first report", driver=first)
    first.kill()
    assert not results(sweep) or len(results(sweep)) < 2
    second = Driver("resume", str(sweep), "--address", cluster, log=tmp_path / "second.log",
                    cwd=tmp_path, env=env)
    assert second.wait() == 0, second.output()[-3000:]
    done = results(sweep)
    assert len(done) == 2 and {r["stop_reason"] for r in done.values()} == {"completed"}
    reports = tune_reports(sweep)
    assert len(reports) == len(set(reports)), "a report was trained twice"
    assert {s for k, s in reports if k in done} >= {400}
    # (which nodes the plugin's runs used depends on where the kill fell: a run first started
    # by the resumed driver takes whichever node is free; the API test below checks both)

    # trained again on fresh seeds, as any family's sweep can be
    rerun = Driver("rerun", str(sweep), "--top", "1", "--seeds", "1", "--address", cluster,
                   log=tmp_path / "rerun.log", cwd=tmp_path, env=env)
    assert rerun.wait() == 0, rerun.output()[-3000:]
    assert len(results(tmp_path / "sweeps" / "lab-rerun")) == 1

    # beside a built-in family on the same data, in one report
    builtin = _spec(tmp_path / "gan.yaml", tmp_path / "sweeps", name="builtin", trainer="gan",
                    dataset="spiral", fixed={"width": 16})
    third = Driver("submit", str(builtin), "--address", cluster, log=tmp_path / "third.log",
                   cwd=tmp_path, env=env)
    assert third.wait() == 0, third.output()[-3000:]
    assert len(_nodes(tmp_path / "sweeps" / "builtin")) == 2, "the trials did not use both nodes"
    report = subprocess.run([sys.executable, "-m", "gansweep", "report", str(sweep),
                             str(tmp_path / "sweeps" / "builtin"), "--out", "report"],
                            cwd=tmp_path, env={**os.environ, **env}, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "hinge-gan" in md and "| gan" in md
    assert "no rerun found" not in md  # the plugin's rerun was picked up


API = """
import json, sys, gansweep
spec, address, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
sweep = gansweep.submit(spec, address=address, log=lambda *_: None)
again = gansweep.resume(sweep.path, address=address, trials=3, log=lambda *_: None)
loaded = gansweep.load(sweep.path)
index = loaded.report(out + "/report")
run = gansweep.train(from_sweep=sweep.path, out=out + "/best", steps=40, log=lambda *_: None)
print("RESULT " + json.dumps({
    "repr": repr(loaded), "html": loaded._repr_html_(), "best": loaded.best,
    "configurations": len(loaded.configurations), "runs": len(loaded.runs),
    "columns": list(loaded.configurations.columns), "index": str(index),
    "trained_steps": int(run["step"].iloc[-1]), "status": loaded.status()["counts"],
    "trackers": [m for m in ("mlflow", "wandb", "comet_ml", "aim") if m in sys.modules]}))
"""


def test_plain_directory_sweeps_resumes_and_reports_through_the_python_api(lab, cluster,
                                                                           tmp_path):
    """The package is nowhere on the workers' path: the spec's py_modules ships it."""
    raw = yaml.safe_load(_spec(tmp_path / "s.yaml", tmp_path / "sweeps", name="plain",
                               trainer="lab_plain.models:HingeGAN",
                               dataset="lab_plain.data:spiral",
                               py_modules=[str(lab["plain"])]).read_text())
    proc = subprocess.run([sys.executable, "-c", API, json.dumps(raw), cluster, str(tmp_path)],
                          cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert got["configurations"] == 3 and got["runs"] == 3  # resumed to 3 configurations
    assert got["status"]["completed"] == 3
    assert got["best"]["metric"] == "coverage" and set(got["best"]["config"]) >= {"blocks"}
    assert "rank" in got["columns"] and got["trained_steps"] == 40
    assert "plain" in got["repr"] and "<table" in got["html"]
    assert Path(got["index"]).is_file()
    assert len(_nodes(tmp_path / "sweeps" / "plain")) == 2
    # a sweep with no tracking imports no tracker (Ray Tune's callback census would import
    # every one installed, 1-2 s of each driver's start: jobs/submit.py skips it)
    assert got["trackers"] == [], got["trackers"]


BROKEN = '''
from gansweep import Trainer

class Broken(Trainer):
    name = "broken"
    data_kinds = ("vector",)
    HPARAMS = {}
'''


def test_a_class_that_breaks_the_contract_is_refused_before_anything_starts(tmp_path):
    (tmp_path / "lab_broken.py").write_text(BROKEN)
    spec = _spec(tmp_path / "s.yaml", tmp_path / "sweeps", name="broken",
                 trainer="lab_broken:Broken", dataset="ring8")
    proc = subprocess.run([sys.executable, "-m", "gansweep", "submit", str(spec)],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "does not follow the trainer contract" in proc.stderr
    for missing in ("`train`", "`sample`", "`state_dict`", "`load_state_dict`"):
        assert missing in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "sweeps").exists()


def test_a_module_the_workers_cannot_import_is_named_with_the_node(lab, cluster, tmp_path):
    """Importable where the driver runs (its PYTHONPATH), nowhere on the cluster, not shipped:
    every trial fails, and the driver says which module on which machine, once."""
    hidden = tmp_path / "hidden"
    shutil.copytree(lab["plain"], hidden / "lab_hidden")
    spec = _spec(tmp_path / "s.yaml", tmp_path / "sweeps", name="hidden",
                 trainer="lab_hidden.models:HingeGAN", dataset="spiral", trials=2)
    proc = subprocess.run([sys.executable, "-m", "gansweep", "submit", str(spec),
                           "--address", cluster], cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1",
                               "PYTHONPATH": f"{hidden}:{lab['installed']}"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "module lab_hidden.models cannot be imported on" in proc.stderr, proc.stderr[-3000:]
    assert "py_modules" in proc.stderr and "Traceback" not in proc.stderr


def test_the_example_spec_is_valid_and_its_code_follows_the_contract(lab):
    code = textwrap.dedent("""
        from gansweep.jobs.spec import load_spec
        spec = load_spec("specs/hinge-spiral.yaml")
        print(spec.trainer, spec.dataset)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=EXAMPLE, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(EXAMPLE)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["lab_gan.models:HingeGAN", "lab_gan.data:spiral"]
