"""Real servers the storage tests start and stop themselves, one of each per test session:

- PostgreSQL from Debian's package (`.ci/run` installs it): initdb and pg_ctl on a free port
  of 127.0.0.1, password authentication over TCP. PostgreSQL refuses to run as root, so as
  root (CI) its programs run as the `postgres` user through runuser.
- An S3-compatible server (moto's ThreadedMotoServer) on 127.0.0.1, reached over HTTP by
  pyarrow's real S3 filesystem and by Ray Tune's storage, with credentials and endpoint in the
  AWS_* environment as a user would give them.
- An MLflow tracking server (`mlflow server`, SQLite store, served artifacts) on 127.0.0.1, one
  per test module that asks for it (`mlflow_server`; tests/test_tracking.py).

Without PostgreSQL installed the tests that need it skip, saying why; GANSWEEP_REQUIRE_SERVERS=1
(set by .ci/run) turns that into a failure so CI cannot pass by skipping them.
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Random per session, so the credentials test can grep for them without false hits.
PG_PASSWORD = "pgpw-" + secrets.token_hex(8)
S3_SECRET = "s3secret-" + secrets.token_hex(8)
PG_USER = "gansweep"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(what: str) -> None:
    if os.environ.get("GANSWEEP_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{what} (GANSWEEP_REQUIRE_SERVERS=1: .ci/run should have installed it)")
    pytest.skip(what)


def _pg_bindir() -> Path | None:
    """Debian installs PostgreSQL's programs under /usr/lib/postgresql/VERSION/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Postgres:
    port: int
    bindir: Path
    base: Path
    as_user: list[str]
    host: str = "127.0.0.1"
    databases: list[str] = field(default_factory=list)

    def url(self, database: str, password: bool = False) -> str:
        secret = f":{PG_PASSWORD}" if password else ""
        return f"postgresql://{PG_USER}{secret}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL without password."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=PG_USER,
                             password=PG_PASSWORD, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url(name)


def _pg(cmd: list[str], as_user: list[str]) -> None:
    proc = subprocess.run(as_user + cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


@pytest.fixture(scope="session")
def postgres():
    bindir = _pg_bindir()
    if bindir is None:
        _missing("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    # A short path of its own under /tmp: pytest's temporary directories are private to the
    # user running pytest (root in CI), which the postgres user cannot enter, and the server's
    # unix socket path must stay short.
    base = Path(tempfile.mkdtemp(prefix="gspg", dir="/tmp"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    pwfile = base / "pw"
    pwfile.write_text(PG_PASSWORD)
    if as_user:
        shutil.chown(pwfile, "postgres")
    _pg([str(bindir / "initdb"), "-D", str(base / "data"), "-U", PG_USER, f"--pwfile={pwfile}",
         "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C"],
        as_user)
    pwfile.unlink()
    port = free_port()
    # fsync off: a test server's data need not survive a power cut, and fsync is slow here
    _pg([str(bindir / "pg_ctl"), "-D", str(base / "data"), "-l", str(base / "log"), "-w",
         "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
        as_user)
    try:
        yield Postgres(port=port, bindir=bindir, base=base, as_user=as_user)
    finally:
        _pg([str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "fast", "-w", "stop"],
            as_user)
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class S3:
    endpoint: str
    env: dict[str, str]

    def create_bucket(self, name: str) -> str:
        """A new bucket, made through pyarrow's S3 client; its URI."""
        import pyarrow.fs as pafs

        host = self.endpoint.split("://", 1)[1]
        fs = pafs.S3FileSystem(access_key=self.env["AWS_ACCESS_KEY_ID"], secret_key=S3_SECRET,
                               endpoint_override=host, scheme="http", region="us-east-1",
                               allow_bucket_creation=True)
        fs.create_dir(name)
        return f"s3://{name}"


@pytest.fixture(scope="session")
def s3():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "gansweep-test",
           "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    # This process reads the bucket too (status, report, the tests' own checks); pyarrow and
    # Ray read these variables, and the drivers and Ray workers the tests start inherit them.
    patch = pytest.MonkeyPatch()
    for k, v in env.items():
        patch.setenv(k, v)
    try:
        yield S3(endpoint=env["AWS_ENDPOINT_URL"], env=env)
    finally:
        patch.undo()
        server.stop()


@dataclass
class Mlflow:
    uri: str
    base: Path


def start_mlflow(base: Path, port: int, timeout: float = 180.0) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1:port with a SQLite store and served artifacts under
    `base`, in its own process group; returns once it answers /health."""
    import sys
    import time
    import urllib.request

    log = open(base / "mlflow-server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}", "--serve-artifacts",
         "--artifacts-destination", str(base / "artifacts"), "--workers", "1"],
        cwd=base, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited:\n{(base / 'mlflow-server.log').read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    stop_process_group(proc)
    raise RuntimeError(f"mlflow server did not answer within {timeout:.0f} s")


def stop_process_group(proc: subprocess.Popen) -> None:
    import signal

    # SIGKILL: a test server's data dies with the test, and its graceful shutdown waits for
    # idle keep-alive connections (seconds)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server (the `mlflow` extra) for one test module."""
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    base = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    proc = start_mlflow(base, port)
    try:
        yield Mlflow(uri=f"http://127.0.0.1:{port}", base=base)
    finally:
        stop_process_group(proc)
