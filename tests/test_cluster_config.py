"""cluster.yaml is a real Ray cluster-launcher config: it validates against the launcher's own
schema and installs this project on every node."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ray
import yaml

from tests.conftest import ROOT


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
