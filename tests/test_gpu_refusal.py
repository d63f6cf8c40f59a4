"""A spec that asks for GPUs on a Ray that has none and cannot get one is refused with exit
code 2 before anything starts; what an autoscaler could add is read from its config."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import torch
import yaml

from gansweep.jobs.resources import (
    check_gpus,
    cluster_config_types,
    launcher_config_types,
    node_types_verdict,
)
from gansweep.trainers.errors import ConfigError
from tests.conftest import ROOT, run_cli, tiny_spec

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def processes_with(marker: str) -> list[str]:
    """Live processes whose environment carries `marker` (Ray's processes inherit it)."""
    found = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in env.read_bytes():
                found.append(env.parent.name)
        except OSError:  # gone, or not ours
            continue
    return found


@no_cuda
def test_cli_refuses_gpus_on_a_machine_without_cuda(tmp_path):
    storage = tmp_path / "sweeps"
    (storage / "older").mkdir(parents=True)
    (storage / "older" / "spec.yaml").write_text("kept as it is\n")
    spec = tmp_path / "gpu.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(storage, name="wants-gpu",
                                             resources={"cpu": 1, "gpu": 1})))
    marker = f"GANSWEEP_TEST_MARK={uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env[marker.split("=")[0]] = marker.split("=")[1]
    proc = run_cli("submit", str(spec), check=False, env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "resources.gpu" in proc.stderr and "set resources.gpu: 0" in proc.stderr
    assert "Traceback" not in proc.stderr and "starting a local Ray" not in proc.stdout
    assert sorted(p.name for p in storage.iterdir()) == ["older"]  # no half-made sweep
    assert (storage / "older" / "spec.yaml").read_text() == "kept as it is\n"
    assert processes_with(marker) == []


def test_a_running_ray_without_gpus_or_autoscaler_is_refused(ray_local):
    with pytest.raises(ConfigError, match=r"resources\.gpu.*runs no autoscaler"):
        check_gpus({"cpu": 1, "gpu": 0.25}, log=lambda *_: None)
    assert ray_local.is_initialized()  # the caller's Ray is left as it was
    check_gpus({"cpu": 1, "gpu": 0}, log=lambda *_: None)


def test_launcher_config_tells_whether_gpu_nodes_can_be_added():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    # As written, the GPU workers' resources are left for the launcher to detect: unknown.
    assert launcher_config_types(config) == {"gpu_worker": (None, 8)}
    assert node_types_verdict(launcher_config_types(config), 0.25)[0] is None
    config["available_node_types"]["gpu_worker"]["resources"] = {"CPU": 8, "GPU": 1}
    assert node_types_verdict(launcher_config_types(config), 0.25) == \
        (True, "nodes of type gpu_worker")
    assert node_types_verdict(launcher_config_types(config), 2)[0] is False
    config["max_workers"] = 0
    assert node_types_verdict(launcher_config_types(config), 0.25)[0] is False


def test_reported_cluster_config_tells_whether_gpu_nodes_can_be_added():
    from ray.core.generated.autoscaler_pb2 import ClusterConfig, NodeGroupConfig

    def config(gpu_max_count: int) -> ClusterConfig:
        return ClusterConfig(node_group_configs=[
            NodeGroupConfig(name="cpu", resources={"CPU": 16}, max_count=4),
            NodeGroupConfig(name="gpu", resources={"CPU": 8, "GPU": 4},
                            max_count=gpu_max_count)])

    assert node_types_verdict(cluster_config_types(config(-1)), 1) == (True, "nodes of type gpu")
    assert node_types_verdict(cluster_config_types(config(0)), 1)[0] is False
    assert node_types_verdict(cluster_config_types(config(2)), 8)[0] is False
