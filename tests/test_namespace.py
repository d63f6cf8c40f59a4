"""gansweep installs one namespace. A research repository with its own `jobs/`, `analysis/` and
`trainers/` packages runs `gansweep submit` from its own directory: Ray puts that directory on
every worker's path, and the workers still train gansweep's trainers."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from tests.conftest import tiny_spec

LAYERS = ("jobs", "analysis", "trainers", "search_spaces")


def _user_repo(tmp_path):
    """Packages named like gansweep's folders, as a research group's repository has them: each
    importable, none holding what gansweep would look for (`jobs.trial`, `trainers.gan`...)."""
    repo = tmp_path / "lab"
    for name in ("jobs", "analysis", "trainers"):
        (repo / name).mkdir(parents=True)
        (repo / name / "__init__.py").write_text(f"OWNER = 'the lab\\'s own {name}'\n")
    return repo


def test_nothing_installs_a_top_level_layer_module(tmp_path):
    code = ("import importlib.util, json, gansweep.jobs.cli as c; "
            f"print(json.dumps([importlib.util.find_spec(n) is None for n in {LAYERS!r}]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) == [True] * len(LAYERS)


def test_a_sweep_runs_from_a_directory_with_its_own_jobs_package(tmp_path):
    repo = _user_repo(tmp_path)
    spec = repo / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(repo / "sweeps", name="lab", trials=2)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "gansweep", "submit", "spec.yaml"], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [json.loads(p.read_text())
               for p in (repo / "sweeps" / "lab").glob("trials/*/result.json")]
    assert len(results) == 2
    assert {r["stop_reason"] for r in results} <= {"completed", "collapsed", "diverged"}
    # the lab's own package is still the one its directory imports
    out = subprocess.run([sys.executable, "-c", "import jobs; print(jobs.OWNER)"], cwd=repo,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "the lab's own jobs"


def test_a_built_wheel_holds_every_module_and_spec(tmp_path):
    """A cluster node or a lab installs a wheel, not our checkout: every module of every layer
    (subpackages included) and every shipped spec must be in it under gansweep/."""
    import pathlib
    import zipfile

    root = pathlib.Path(__file__).resolve().parents[1]
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.split()
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ behind
    for name in tracked:
        if (root / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((root / name).read_bytes())
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
                   capture_output=True, text=True, check=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("gansweep-*.whl")
    held = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"gansweep/{name}" if name.split("/")[0] != "gansweep" else name
                for name in tracked
                if name.split("/")[0] in (*LAYERS, "gansweep")
                and (name.endswith(".py") or name.startswith("jobs/specs/"))}
    assert expected - held == set()
