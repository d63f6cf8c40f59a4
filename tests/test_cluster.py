"""The cluster paths: a two-node Ray cluster on one machine, and a real `ray start --head` on
loopback with the sweep sent by `ray job submit`. Each runs in its own processes so it never
touches the session's local Ray."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, tiny_spec
from tests.servers import stop_process_group

BIN = Path(sys.executable).parent
TWO_NODES = """
import json, sys
import ray
from ray.cluster_utils import Cluster
from gansweep.jobs.spec import parse_spec
from gansweep.jobs.submit import submit

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
submit(parse_spec(json.loads(sys.argv[1])), log=lambda *_: None)
ray.shutdown()
cluster.shutdown()
print("NODES " + json.dumps(sorted(nodes)))
"""


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
            "PATH": f"{BIN}:{os.environ['PATH']}"}


def _node_ids(sweep: Path) -> set[str]:
    return {json.loads(p.read_text())["node_id"] for p in sweep.glob("trials/*/config.json")}


def test_two_node_cluster_places_trials_on_both_nodes(tmp_path):
    raw = tiny_spec(tmp_path, trials=4, steps=60, report_every=20, max_concurrent=2,
                    early_stop={"collapse": False})
    proc = subprocess.run([sys.executable, "-c", TWO_NODES, json.dumps(raw)], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    nodes = set(json.loads(proc.stdout.split("NODES ")[1]))
    assert len(nodes) == 2
    used = _node_ids(tmp_path / "tiny")
    assert used == nodes, f"trials ran on {used}, cluster nodes {nodes}"
    assert len(list((tmp_path / "tiny").glob("trials/*/result.json"))) == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """`ray start --head` on loopback, kept in the foreground so it can be stopped alone."""
    gcs, dash = _free_port(), _free_port()
    temp = Path("/tmp") / f"rayhead{gcs}"  # unix socket paths must stay short
    # Token authentication, as Ray 2.60 clusters run: the head and its clients share a token
    # file of the test's own, whatever the machine's ~/.ray holds.
    token = tmp_path / "auth_token"
    token.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}",
         "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--disable-usage-stats",
         # the job agent's port is fixed (52365) by default: another Ray on this machine
         # holding it leaves the head without a job agent ("No available agent")
         f"--dashboard-agent-listen-port={_free_port()}",
         f"--temp-dir={temp}"],
        env={**_env(), **auth}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    deadline = time.time() + 120
    import urllib.error
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(url + "/api/version", timeout=2)
            break
        except urllib.error.HTTPError:  # 401: up, with Ray's token authentication on
            break
        except OSError:
            if head.poll() is not None or time.time() > deadline:
                head.kill()
                pytest.fail("ray start --head did not come up:\n" + head.stdout.read())
            time.sleep(1)
    yield url, auth
    _stop(head)


def _stop(head: subprocess.Popen) -> None:
    """A `ray start --head --block` started in a session of its own, ended with its processes
    (which share its group). Not SIGTERM first: the blocked head outlives it, so that cost a
    10 s timeout every time."""
    stop_process_group(head)


def test_ray_job_submit_to_a_running_head(ray_head, tmp_path):
    import yaml

    url, auth = ray_head
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(tmp_path / "store", name="viajob", trials=2)))
    # The dashboard answers before the node's job agent has registered with it; a submit in
    # between is refused without starting anything, and Ray says to try again.
    deadline = time.monotonic() + 60
    while True:
        proc = subprocess.run(
            [str(BIN / "ray"), "job", "submit", "--address", url, "--",
             sys.executable, "-m", "gansweep", "submit", str(spec)],
            cwd=ROOT, env={**_env(), **auth}, capture_output=True, text=True,
            timeout=420)
        if "No available agent" not in proc.stdout + proc.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "joining the Ray cluster" in proc.stdout
    sweep = tmp_path / "store" / "viajob"
    assert len(list(sweep.glob("trials/*/result.json"))) == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on leaving: nothing listens there


def test_an_unreachable_cluster_is_refused_before_anything_is_made(tmp_path):
    """Without the check, `ray.init` retries a dead address for minutes and ends in a stack
    trace, with the sweep directory already made."""
    import yaml

    from tests.conftest import run_cli

    storage = tmp_path / "sweeps"
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(storage, name="far")))
    port = _closed_port()
    t0 = time.monotonic()
    proc = run_cli("submit", str(spec), "--address", f"127.0.0.1:{port}", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port} (--address)" in proc.stderr
    assert "drop --address to run on a local Ray" in proc.stderr
    assert "Traceback" not in proc.stderr and not storage.exists()
    env = {**os.environ, "RAY_ADDRESS": f"ray://127.0.0.1:{port}"}
    proc = run_cli("submit", str(spec), check=False, env=env)
    assert proc.returncode == 2 and "(RAY_ADDRESS)" in proc.stderr and not storage.exists()
    # both set to one address: --address is the one used, and the one named
    proc = run_cli("submit", str(spec), "--address", f"ray://127.0.0.1:{port}", check=False,
                   env=env)
    assert proc.returncode == 2 and "(--address)" in proc.stderr and not storage.exists()
    assert time.monotonic() - t0 < 60


def test_cluster_addresses_are_read_as_ray_reads_them():
    from gansweep.jobs.ray_address import check_reachable, endpoint
    from gansweep.trainers.errors import ConfigError

    assert endpoint("10.0.0.5:6380") == ("10.0.0.5", 6380)
    assert endpoint("head.example") == ("head.example", 6379)  # the GCS's default port
    assert endpoint("ray://head.example/") == ("head.example", 10001)  # Ray Client's
    assert endpoint("ray://10.0.0.5:20001") == ("10.0.0.5", 20001)
    for bad in ("127.0.0.1:http", ":6379"):
        with pytest.raises(ConfigError, match="write host:port"):
            check_reachable(bad)
    check_reachable("auto")  # left to Ray: a cluster started on this machine


def test_the_local_ray_is_a_new_one_where_ray_start_left_a_cluster(tmp_path):
    """A bare `ray.init()` joins the cluster the last `ray start` on this machine recorded; a
    sweep given no address must start its own Ray, as it says, not run on someone else's.
    And while another process holds the port Ray's node agent binds by default (52365), the
    sweep's Ray takes a free one instead of retrying that one for seconds. Its node runs no
    log monitor (jobs/submit.py, LEAN_NODE), which the `ray start` head beside it does."""
    import yaml

    temp = Path("/tmp") / f"gsl{uuid.uuid4().hex[:6]}"  # RAY_TMPDIR: where both look
    token = tmp_path / "auth_token"
    token.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    env = {k: v for k, v in _env().items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=str(temp), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={_free_port()}",
         "--node-ip-address=127.0.0.1", "--num-cpus=1", "--include-dashboard=false",
         "--disable-usage-stats", f"--dashboard-agent-listen-port={_free_port()}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        recorded = temp / "ray" / "ray_current_cluster"
        deadline = time.time() + 120
        while not recorded.exists():
            if head.poll() is not None or time.time() > deadline:
                pytest.fail("ray start --head did not come up:\n" + head.stdout.read())
            time.sleep(0.5)
        head_logs = next((temp / "ray").glob("session_2*")) / "logs"
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump(tiny_spec(tmp_path / "store", trials=2)))
        with socket.socket() as taken:
            try:
                taken.bind(("0.0.0.0", 52365))
                taken.listen()
            except OSError:  # another Ray here has it: taken all the same
                pass
            proc = subprocess.run([sys.executable, "-m", "gansweep", "submit", str(spec)],
                                  cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "starting a local Ray" in proc.stdout
        own = [d for d in (temp / "ray").glob("session_2*") if d != head_logs.parent]
        assert len(own) == 1, own
        agent_log = (own[0] / "logs" / "dashboard_agent.log").read_text()
        assert "Failed to bind" not in agent_log, agent_log[-2000:]
        assert (head_logs / "log_monitor.log").exists()
        assert not (own[0] / "logs" / "log_monitor.log").exists()
        assert (own[0] / "logs" / "monitor.log").exists()  # kept: jobs/resources.py reads it
        # a driver that joins a node writes its log among that node's
        assert not list(head_logs.glob("python-core-driver-*")), "the sweep joined the head"
        assert len(list((tmp_path / "store" / "tiny").glob("trials/*/result.json"))) == 2
    finally:
        _stop(head)
        subprocess.run(["pkill", "-9", "-f", str(temp)], check=False)
