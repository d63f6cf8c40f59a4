"""Refuse a spec that asks for GPUs on a Ray cluster that has none and cannot get one.

Without this, every trial of such a sweep waits in PENDING forever. Checked before a sweep
directory is made and before any trial starts:

- The embedded local Ray (no --address, no RAY_ADDRESS, none running): it has the GPUs torch
  sees on this machine, so the answer is known before Ray starts.
- A joined (or already running) Ray: fine when some node has the GPUs a trial needs. If none
  has, the cluster may still get one from its autoscaler, which three sources can tell:
  1. the cluster config an autoscaler reports to the GCS (Ray Data and Ray Train read the
     same record to size themselves; Ray's v2 autoscaler writes it);
  2. the cluster launcher's `~/ray_bootstrap_config.yaml`, when this driver runs on the head
     node (as under `ray job submit`; Ray Tune reads the same file to spot an autoscaling
     cluster);
  3. the head's monitor: on a cluster started by hand it mirrors each node as an anonymous
     node type and can add none.
  When none of them can tell (an autoscaler whose node types are not visible from here), the
  sweep goes on with a warning: refusing a cluster that would have scaled up is worse.
Sources 1 and 3 are Ray internals: if they move in another Ray version they tell nothing,
which again means a warning, never a refusal.

Inside a trial, `trial_device` places the trainer by the GPUs Ray assigned that trial
(`trainers.base.pick_device`): none, the CPU; some, CUDA or an error at once.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from gansweep.jobs.ray_address import resolve
from gansweep.trainers.errors import ConfigError

HEAD_CONFIG = "~/ray_bootstrap_config.yaml"
HEAD_RESOURCE = "node:__internal_head__"
MONITOR_WAIT_S = 10.0  # the monitor writes its first status within one 5 s update
# Set only by benchmarks/gpu_check.py's CPU rehearsal, which gives a CUDA-less Ray one logical
# GPU: there a trial handed that GPU trains on the CPU instead of failing.
REHEARSAL_ENV = "GANSWEEP_GPU_REHEARSAL"


def check_gpus(resources: dict[str, Any], address: str | None = None, log=print,
               py_modules: tuple = ()) -> None:
    """Raise ConfigError when trials asking for `resources["gpu"]` could never be placed."""
    need = float(resources.get("gpu") or 0)
    if need <= 0:
        return
    import ray

    address = resolve(address)
    if not address and not ray.is_initialized():
        _check_this_machine(need)
        return
    from gansweep.jobs.submit import init_ray

    connected_here = not ray.is_initialized()
    init_ray(address, log, py_modules)
    where = f"the Ray cluster at {address}" if address else "the running Ray"
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if max((n["Resources"].get("GPU", 0.0) for n in nodes), default=0.0) >= need:
        return
    can, detail = autoscaler_can_add(need, nodes)
    if can:
        log(f"[gansweep] no node of {where} has {_gpus(need)} yet; its autoscaler can add "
            f"{detail}: trials start as those nodes join")
    elif can is None:
        log(f"[gansweep] warning: no node of {where} has {_gpus(need)}, and whether an "
            f"autoscaler can add one cannot be told from here ({detail}); trials asking for "
            f"resources.gpu {need:g} wait until such a node joins (Ctrl-C stops the sweep; "
            "resources.gpu: 0 runs the trials on CPUs)")
    else:
        if connected_here:
            ray.shutdown()
        raise ConfigError(
            f"resources.gpu: the spec asks for {need:g} GPU per trial, but no node of {where} "
            f"has {_gpus(need)} and nothing can add one ({detail}), so no trial could ever "
            "start; set resources.gpu: 0 to train on CPUs, or add GPU nodes to the cluster "
            "(or GPU node types to its autoscaler's config)")


def _gpus(need: float) -> str:
    return "a GPU" if need <= 1 else f"{need:g} GPUs"


def _check_this_machine(need: float) -> None:
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have == 0:
        raise ConfigError(
            f"resources.gpu: the spec asks for {need:g} GPU per trial, but this machine has "
            "no CUDA device (torch sees none) and no cluster was named (--address or "
            "RAY_ADDRESS), so the local Ray could never start a trial; set resources.gpu: 0 "
            "to train on this machine's CPUs, or submit to a cluster with GPU nodes "
            "(--address)")
    if need > have:
        raise ConfigError(
            f"resources.gpu: the spec asks for {need:g} GPUs per trial, but this machine has "
            f"{have}; set resources.gpu to at most {have}, or submit to a cluster with larger "
            "GPU nodes (--address)")


def autoscaler_can_add(need: float, nodes: list[dict]) -> tuple[bool | None, str]:
    """(True, which node types) / (False, why not) / (None, why it cannot be told)."""
    answer: tuple[bool | None, str] = (None, "")
    for source in (_reported_config, _head_config, _monitor):
        try:
            answer = source(need, nodes)
        except Exception as exc:  # Ray internals differ between versions: no answer
            answer = None, f"{source.__name__.strip('_')} unreadable: {exc}"
        if answer[0] is not None:
            break
    return answer


def node_types_verdict(types: dict[str, tuple[float | None, int]],
                       need: float) -> tuple[bool | None, str]:
    """Node types as {name: (GPUs per node or None if unknown, max nodes, -1 unlimited)}."""
    live = {name: gpu for name, (gpu, most) in types.items() if most != 0}
    fit = sorted(name for name, gpu in live.items() if gpu is not None and gpu >= need)
    if fit:
        return True, "nodes of type " + ", ".join(fit)
    unknown = sorted(name for name, gpu in live.items() if gpu is None)
    if unknown:
        return None, f"node type {', '.join(unknown)} declares no resources"
    if not types:
        return False, "the autoscaler has no worker node types"
    return False, (f"the autoscaler's node types {', '.join(sorted(types))} have no node with "
                   f"{_gpus(need)}")


def cluster_config_types(config) -> dict[str, tuple[float | None, int]]:
    """Node types of an autoscaler's ClusterConfig protobuf, as node_types_verdict reads them."""
    return {g.name: (float(g.resources.get("GPU", 0)), int(g.max_count))
            for g in config.node_group_configs}


def launcher_config_types(config: dict) -> dict[str, tuple[float | None, int]]:
    """Worker node types of a cluster-launcher config. The head type is left out (it runs
    already; its GPUs are in the cluster's resources). `resources: {}` is what the launcher
    fills in from the instance type; left empty (detection failed) it says nothing."""
    cluster_max = config.get("max_workers")
    types = {}
    for name, t in (config.get("available_node_types") or {}).items():
        if name == config.get("head_node_type"):
            continue
        res = t.get("resources") or {}
        most = int(t.get("max_workers", cluster_max if cluster_max is not None else -1))
        types[name] = (float(res.get("GPU", 0)) if res else None,
                       0 if cluster_max == 0 else most)
    return types


def _reported_config(need: float, nodes: list[dict]) -> tuple[bool | None, str]:
    import ray._private.state

    config = ray._private.state.state.get_cluster_config()
    if config is None or not config.node_group_configs:
        return None, "no autoscaler reported its config to the GCS"
    return node_types_verdict(cluster_config_types(config), need)


def _head_config(need: float, nodes: list[dict]) -> tuple[bool | None, str]:
    import ray
    import yaml

    me = ray.get_runtime_context().get_node_id()
    if not any(n["NodeID"] == me and HEAD_RESOURCE in n["Resources"] for n in nodes):
        return None, "this driver is not on the head node"
    path = Path(HEAD_CONFIG).expanduser()
    if not path.is_file():
        return None, f"no {HEAD_CONFIG} on the head node"
    return node_types_verdict(launcher_config_types(yaml.safe_load(path.read_text())), need)


def _monitor(need: float, nodes: list[dict]) -> tuple[bool | None, str]:
    from ray._private.ray_constants import DEBUG_AUTOSCALING_STATUS
    from ray.autoscaler._private.util import format_readonly_node_type
    from ray.autoscaler.v2.utils import is_autoscaler_v2
    from ray.experimental.internal_kv import _internal_kv_get

    if is_autoscaler_v2():
        return None, "the v2 autoscaler reported no config"
    deadline = time.monotonic() + MONITOR_WAIT_S
    # Its first status carries load metrics only; the node types come with its first update.
    while not (mapping := _node_type_mapping(_internal_kv_get(DEBUG_AUTOSCALING_STATUS.encode()))):
        if time.monotonic() > deadline:
            return None, "the head's monitor has reported no node types"
        time.sleep(0.5)
    if all(t == format_readonly_node_type(n) for n, t in mapping.items()):
        return False, "it runs no autoscaler; its nodes were started by `ray start` or `ray.init`"
    return None, "an autoscaler runs, but its node types are not visible from this driver"


def _node_type_mapping(raw: bytes | None) -> dict:
    report = json.loads(raw).get("autoscaler_report") if raw else None
    return (report or {}).get("node_type_mapping") or {}


def trial_device():
    """The torch device of the Ray trial this runs in, from the GPUs Ray assigned it (never
    from what CUDA this process happens to see); outside Ray, pick_device's own choice."""
    import ray

    from gansweep.trainers.base import CudaUnusable, pick_device

    gpus = [str(i) for i in ray.get_gpu_ids()] if ray.is_initialized() else None
    try:
        return pick_device(gpus=gpus)
    except CudaUnusable:
        if os.environ.get(REHEARSAL_ENV) == "1":
            return pick_device("cpu")
        raise

