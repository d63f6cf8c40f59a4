"""cluster.yaml is a real Ray cluster-launcher config: it validates against the launcher's own
schema and installs this project on every node; `gansweep cluster check` refuses, before
`ray up`, what would otherwise fail only on the nodes; `gansweep cluster node-check` fails a
GPU node's setup when torch cannot use its GPU; the shipped cluster spec fits the cluster."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import ray
import torch
import yaml

from gansweep.jobs.cluster_check import check_config, node_check, nvidia_gpus
from gansweep.jobs.spec import load_spec
from gansweep.trainers.errors import ConfigError
from tests.conftest import ROOT, run_cli

SPEC = ROOT / "jobs" / "specs" / "cluster-dcgan-digits.yaml"
FILLED = {"FILL_IN_IMAGE_ID": "ami-0abcdef1234567890",
          "FILL_IN_SECURITY_GROUP_ID": "sg-0abcdef1234567890",
          "FILL_IN_EFS_DNS": "fs-0abcdef1234567890.efs.us-west-2.amazonaws.com"}


def shipped_text() -> str:
    return (ROOT / "cluster.yaml").read_text()


def filled_text() -> str:
    text = shipped_text()
    for token, value in FILLED.items():
        text = text.replace(token, value)
    return text


def refused(tmp_path: Path, text: str, spec: str | None = None) -> str:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        check_config(path, spec, cwd=ROOT)
    return str(err.value)


def test_cluster_yaml_validates_against_ray_schema():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json")
                        .read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("CPU") == 0  # the head only drives the sweep
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert any("g5" in t["node_config"]["InstanceType"] for t in workers)
    assert all("min_workers" in t and "max_workers" in t for t in workers)
    setup = "\n".join(config["setup_commands"])
    assert "constraints.txt" in setup and "-e /home/ubuntu/gansweep" in setup


def test_the_shipped_config_is_refused_for_its_placeholders_and_nothing_else(tmp_path):
    message = refused(tmp_path, shipped_text())
    problems = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(problems) == 3, message
    for token, key in (("FILL_IN_IMAGE_ID", "node_config.ImageId"),
                       ("FILL_IN_SECURITY_GROUP_ID", "node_config.SecurityGroupIds[0]"),
                       ("FILL_IN_EFS_DNS", "setup_commands[1]")):
        assert any(token in p and key in p for p in problems), (token, message)


def test_filled_in_the_shipped_config_and_spec_are_ready(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(filled_text())
    merged = check_config(path, str(SPEC), cwd=ROOT)
    # As Ray composes it: what the head and the workers run, Ray's defaults we rely on kept
    head = merged["setup_commands"] + merged["head_setup_commands"]
    assert any("boto3" in c for c in head)
    assert all("ulimit -n 65536" in merged[k][-1]
               for k in ("head_start_ray_commands", "worker_start_ray_commands"))
    worker = merged["setup_commands"] + merged["worker_setup_commands"]
    assert worker[-1].endswith("gansweep cluster node-check")


BROKEN = {
    "an unfilled placeholder": (lambda t: t.replace("ami-0abcdef1234567890",
                                                    "FILL_IN_IMAGE_ID"),
                                r"ImageId \(and 1 more place\): FILL_IN_IMAGE_ID"),
    "a variable set only on your machine": (
        lambda t: t.replace("fs-0abcdef1234567890.efs", "${EFS_DNS:-fs-0.efs}.efs"),
        r"setup_commands\[1\]: \$\{EFS_DNS\.\.\.\} is expanded by the node's shell"),
    "no shared mount": (lambda t: re.sub(r"  - >-\n    sudo mkdir -p /mnt/sweeps.*?\n(?=  - )",
                                         "", t, flags=re.S),
                        r"node type head_cpu .*/mnt/sweeps is not on a shared filesystem"),
    "NFS without nfs-common": (lambda t: t.replace("nfs-common python3-venv", "python3-venv"),
                               r"gpu_worker .*mounts NFS without installing nfs-common"),
    "no security group the mount target admits": (
        lambda t: re.sub(r"\n      SecurityGroupIds: .*", "", t),
        r"available_node_types\.gpu_worker\.node_config\.SecurityGroupIds \(and head_cpu\)"),
    "Ray unpinned": (lambda t: t.replace('"ray[default,tune]==2.60.0" ', ""),
                     r"gpu_worker .*Ray is not pinned; pip install \"ray\[default,tune\]=="),
    "another Ray than this machine's": (lambda t: t.replace("==2.60.0", "==2.59.0"),
                                        r"pins ray==2\.59\.0 but this machine runs Ray 2\.60"),
    "torch unpinned": (lambda t: t.replace(" torch==2.13.0", " torch"),
                       r"torch is not pinned; pip install torch==2\.13\.0"),
    "no CUDA check": (lambda t: t.replace("  - ~/gansweep-venv/bin/gansweep cluster node-check\n",
                                          ""),
                      r"node type gpu_worker .*nothing checks that torch can use this node's GPU"),
    "a worker type's own setup, skipping the shared one": (
        lambda t: t.replace("    resources: {}", "    resources: {}\n    worker_setup_commands: "
                            "[echo hi]"),
        r"gpu_worker \(available_node_types\.gpu_worker\.worker_setup_commands, which replaces "
        r"setup_commands\): Ray is not pinned"),
    "head_setup_commands: [] (no boto3)": (
        lambda t: re.sub(r"head_setup_commands:\n.*?\n(?=worker_setup_commands)",
                         "head_setup_commands: []\n", t, flags=re.S),
        r"head_cpu .*boto3 is never installed"),
    "Ray's ulimit dropped": (lambda t: t.replace("ulimit -n 65536; ray start --head",
                                                 "ray start --head"),
                             r"head_start_ray_commands: Ray's default raises the open-files"),
    "the whole checkout copied": (lambda t: t.replace("rsync_filter: [.gitignore]\n", ""),
                                  r"rsync_filter: without \[\.gitignore\]"),
    ".git copied": (lambda t: t.replace("rsync_exclude: [.git]\n", ""),
                    r"rsync_exclude: \.git is copied"),
    "a key Ray does not know": (lambda t: t + "setup_command: []\n",
                                r"the top level: Additional properties .*'setup_command' was "
                                r"unexpected\) \(Ray's cluster-config schema\)"),
}


@pytest.mark.parametrize("mutation", list(BROKEN), ids=list(BROKEN))
def test_a_broken_config_is_refused_naming_the_key(tmp_path, mutation):
    change, expected = BROKEN[mutation]
    text = change(filled_text())
    assert text != filled_text(), "the mutation changed nothing"
    message = refused(tmp_path, text)
    assert re.search(expected, message), message


def test_the_spec_must_keep_its_sweeps_on_the_shared_mount(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.read_text().replace("storage: /mnt/sweeps", "storage: sweeps"))
    assert "sweeps is not on a shared filesystem" in refused(tmp_path, filled_text(), str(spec))
    # A bucket needs no mount, and the spec's own errors come with their own message.
    spec.write_text(SPEC.read_text().replace("storage: /mnt/sweeps", "storage: s3://b/sweeps"))
    path = tmp_path / "cluster.yaml"
    path.write_text(re.sub(r"  - >-\n    sudo mkdir -p /mnt/sweeps.*?\n(?=  - )", "",
                           filled_text(), flags=re.S))
    check_config(path, str(spec), cwd=ROOT)
    spec.write_text(SPEC.read_text().replace("gpu: 0.25", "gpu: 1.5"))
    with pytest.raises(ConfigError, match=r"resources\.gpu: 1\.5 is not valid"):
        check_config(path, str(spec), cwd=ROOT)


def test_the_checkout_must_be_where_ray_up_runs(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(filled_text())
    with pytest.raises(ConfigError, match=r"file_mounts: no entry copies a gansweep checkout"):
        check_config(path, cwd=tmp_path)


def test_the_cli_refuses_with_exit_2_and_passes_a_ready_config(tmp_path):
    proc = run_cli("cluster", "check", "cluster.yaml", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("gansweep cluster: error: cluster.yaml would fail")
    assert "FILL_IN_EFS_DNS" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "cluster.yaml").write_text(filled_text())
    proc = run_cli("cluster", "check", str(tmp_path / "cluster.yaml"), "--spec", str(SPEC))
    assert "ready for `ray up`" in proc.stdout


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_ray_copies_only_what_git_tracks(tmp_path):
    """Ray's own rsync arguments for the shipped filters, run dry on this checkout."""
    from ray.autoscaler._private.command_runner import SSHCommandRunner

    config = yaml.safe_load(shipped_text())
    args = SSHCommandRunner._create_rsync_filter_args(None, {
        k: config[k] for k in ("rsync_exclude", "rsync_filter")})
    listed = subprocess.run(["rsync", "-a", "--dry-run", "--out-format=%n", *args, "./",
                             f"{tmp_path}/"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    top = {name.split("/")[0] for name in listed}
    assert {"jobs", "trainers", "analysis", "pyproject.toml", "constraints.txt"} <= top
    assert not top & {".venv", ".git", "sweeps", "gansweep.egg-info"}, top


def test_the_cluster_spec_lets_the_autoscaler_see_demand():
    spec = load_spec(SPEC)
    config = yaml.safe_load(shipped_text())
    workers = config["available_node_types"]["gpu_worker"]
    assert spec.storage == "/mnt/sweeps" and 0 < spec.resources["gpu"] < 1
    per_gpu = round(1 / spec.resources["gpu"])
    # a g5.2xlarge has one GPU and 8 vCPUs: the trials that share it fit its CPUs too
    assert per_gpu * spec.resources["cpu"] <= 8
    assert spec.max_concurrent >= workers["max_workers"] * per_gpu
    assert spec.study.startswith("postgresql://") and ":" not in spec.study.split("@")[0][13:]


def test_the_cluster_spec_reaches_postgresql_over_its_unix_socket(postgres):
    """The spec's study URL form (no host, the socket directory as ?host=, peer/trust auth on
    the socket: no password) through gansweep's own study code, on a real server."""
    from sqlalchemy.engine import make_url

    from gansweep.jobs import study
    from tests.servers import PG_USER

    postgres.create_database("gansweep_socket")
    url = make_url(load_spec(SPEC).study).set(username=PG_USER, database="gansweep_socket")
    url = url.update_query_dict({"host": str(postgres.base), "port": str(postgres.port)})
    storage = study.check(study.parse(url.render_as_string(hide_password=False), "/mnt/sweeps"))
    import optuna

    made = optuna.create_study(study_name="socket", storage=storage)
    assert optuna.load_study(study_name="socket", storage=storage)._study_id == made._study_id


def fake_pci(root: Path, devices: dict[str, tuple[str, str]]) -> Path:
    for address, (vendor, kind) in devices.items():
        (root / address).mkdir(parents=True)
        (root / address / "vendor").write_text(vendor + "\n")
        (root / address / "class").write_text(kind + "\n")
    return root


def test_node_check_passes_a_node_without_an_nvidia_gpu(tmp_path):
    bus = fake_pci(tmp_path, {"0000:00:02.0": ("0x8086", "0x030000"),     # Intel graphics
                              "0000:00:1f.0": ("0x10de", "0x068000")})    # NVSwitch bridge
    assert nvidia_gpus(bus) == []
    said = []
    node_check(bus, log=said.append)
    assert "no NVIDIA GPU" in said[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine's torch can use CUDA")
def test_node_check_fails_a_gpu_node_whose_torch_cannot_use_it(tmp_path):
    bus = fake_pci(tmp_path, {"0000:00:1e.0": ("0x10de", "0x030200")})  # an A10G's class
    assert nvidia_gpus(bus) == ["0000:00:1e.0"]
    proc = run_cli("cluster", "node-check", "--pci-devices", str(bus), check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "this node has 1 NVIDIA GPU (0000:00:1e.0) but torch" in proc.stderr
    assert "Trials given a GPU here would fail" in proc.stderr
    assert "Traceback" not in proc.stderr
