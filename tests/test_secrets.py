"""No password on a command line: a real sweep keeps its Optuna study on a PostgreSQL server
that requires one (scram-sha-256 over TCP, tests/servers.py), with the password only in a
PGPASSFILE, and while it runs neither any process's arguments (`ps`, which every user of the
machine can read) nor Ray's job table (the driver's entrypoint and job config, which every
client of the cluster can read) hold it. A URL carrying the password is refused, as the
message says, without repeating it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, run_cli, tiny_spec
from tests.faults import Driver, store_histories, wait_for, write_spec
from tests.servers import PG_PASSWORD, PG_USER

# Run in a separate process, so this one never joins the sweep's Ray. Ray 2.60 starts a local
# cluster with token authentication; a standalone GCS client reads the token from
# ~/.ray/auth_token once told to use one.
JOB_TABLE = """
import json, sys
from ray._raylet import GcsClient
client = GcsClient(address=sys.argv[1])
jobs = client.get_all_job_info(timeout=30)
print(json.dumps([{"entrypoint": j.entrypoint, "record": j.SerializeToString().hex()}
                  for j in jobs.values()]))
"""


def job_table(ray_tmp) -> list[dict]:
    """Every job the GCS of the Ray session under `ray_tmp` records: its entrypoint and the
    whole serialized record (job config, runtime env, driver sys.path included)."""
    port_file = next((ray_tmp / "ray" / "session_latest").glob("gcs_server_port_*"))
    address = f"127.0.0.1:{port_file.read_text().strip()}"
    for mode in ("token", "disabled"):
        proc = subprocess.run([sys.executable, "-c", JOB_TABLE, address], cwd=ROOT,
                              env={**os.environ, "RAY_AUTH_MODE": mode},
                              capture_output=True, text=True, timeout=120)
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
    raise AssertionError(f"cannot read the job table at {address}:\n{proc.stderr[-2000:]}")


def process_args() -> list[str]:
    """What `ps` shows any user: every process's full command line."""
    return subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True,
                          check=True).stdout.splitlines()


@pytest.fixture(scope="module")
def sweep(postgres, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secrets")
    url = postgres.create_database("secrets")
    assert PG_PASSWORD not in url
    pgpass = tmp / "pgpass"
    pgpass.write_text(f"{postgres.host}:{postgres.port}:*:{PG_USER}:{PG_PASSWORD}\n")
    pgpass.chmod(0o600)  # libpq ignores a password file others can read
    raw = tiny_spec(tmp / "sweeps", name="secrets", trials=2, steps=200, report_every=20,
                    early_stop={"collapse": False}, study=url)
    spec = write_spec(tmp / "spec.yaml", raw)
    root = tmp / "sweeps" / "secrets"
    seen: set[str] = set()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PGPASSWORD", raising=False)
        mp.setenv("PGPASSFILE", str(pgpass))
        driver = Driver("submit", str(spec), log=tmp / "submit.log")
        # trials are training: the driver, Ray's daemons and its workers all exist now
        wait_for(lambda: store_histories(root), "a trial's first report", driver=driver)
        jobs = job_table(driver.tmp)
        while driver.proc.poll() is None:
            seen.update(process_args())
            time.sleep(0.2)
        rc = driver.wait()
        # With no password anywhere (empty password file), the same server refuses: the sweep
        # above reached it through the file alone
        (tmp / "empty").write_text("")
        (tmp / "empty").chmod(0o600)
        mp.setenv("PGPASSFILE", str(tmp / "empty"))
        unpassworded = run_cli("submit", str(write_spec(tmp / "other.yaml",
                                                        {**raw, "name": "other"})),
                               check=False, timeout=120)
        refused = run_cli("resume", str(root), "--study", postgres.url("secrets", password=True),
                          check=False, timeout=120)
    return dict(rc=rc, log=(tmp / "submit.log").read_text(), jobs=jobs, seen=seen, spec=spec,
                root=root, unpassworded=unpassworded, refused=refused)


def test_sweep_ran_with_the_password_from_the_password_file(sweep):
    assert sweep["rc"] == 0, sweep["log"][-3000:]
    assert "done (2 of 2 configurations" in sweep["log"]
    other = sweep["unpassworded"]
    assert other.returncode == 2 and "cannot open the Optuna study database" in other.stderr
    assert "password" in other.stderr.lower() and "PGPASSWORD" in other.stderr


def test_process_scan_sees_whole_command_lines_of_other_processes():
    """The control: an argument far down a long command line of another process is found."""
    marker = "marker-" + os.urandom(4).hex()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "x" * 5000,
                              marker])
    try:
        wait_for(lambda: any(marker in line for line in process_args()), "the marker in ps",
                 timeout=30)
    finally:
        other.kill()
        other.wait()


def test_no_process_argument_holds_the_password(sweep):
    seen = sweep["seen"]
    # the scan saw the driver's own command line and Ray's processes, while trials ran
    assert any(str(sweep["spec"]) in line and "gansweep" in line for line in seen)
    assert any("raylet" in line for line in seen) and any("ray::" in line for line in seen)
    assert [line for line in seen if PG_PASSWORD in line] == []


def test_ray_job_table_does_not_hold_the_password(sweep):
    jobs = sweep["jobs"]
    # the table records what was typed: the driver's entrypoint names the spec file
    assert any(str(sweep["spec"]) in j["entrypoint"] for j in jobs), jobs
    secret = PG_PASSWORD.encode().hex()
    assert [j["entrypoint"] for j in jobs if secret in j["record"]] == []


def test_a_url_with_the_password_is_refused_without_repeating_it(sweep):
    proc = sweep["refused"]
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gansweep resume: error: --study: ")
    assert "PGPASSWORD" in lines[0] and "pgpass" in lines[0]
    assert PG_PASSWORD not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
