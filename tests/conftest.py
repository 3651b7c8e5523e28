"""Fixtures shared by the whole suite: workspaces, a real `nerve serve`, and engines.

- ``make_workspace(events={...})``: a fresh workspace in tmp_path with the given catalog.
- ``serve(workspace)``: starts the real ``nerve serve`` on a free loopback port as a
  subprocess and waits for ``GET /health``; stopped (SIGTERM) at teardown.
- ``engine``: the engine-agnostic suite's parameter; DuckDB always, PostgreSQL when
  NERVE_TEST_POSTGRES_URL is set (.ci/run sets it), Spark in local mode when pyspark is
  installed. ``engine.load(name, arrow_table)`` returns an Ibis table on that engine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from nerve.workspace import Workspace, init_workspace

# ----------------------------------------------------------------------------- workspaces


@pytest.fixture
def make_workspace(tmp_path: Path) -> Callable[..., Workspace]:
    """Create a workspace; ``events`` maps file names under events/ to YAML text."""
    counter = iter(range(1000))

    def make(events: dict[str, str] | None = None, *, name: str = "test",
             extra_toml: str = "") -> Workspace:
        root = tmp_path / f"ws{next(counter)}"
        init_workspace(root, name)
        for rel, text in (events or {}).items():
            path = root / "events" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if extra_toml:
            with (root / "nerve.toml").open("a", encoding="utf-8") as f:
                f.write("\n" + extra_toml)
        return Workspace.load(root)

    return make


# ----------------------------------------------------------------------------- the CLI


def run_nerve(root: Path, *args: str) -> Result:
    """``nerve --workspace root ...`` in this process, with Typer's runner: the command's
    ``stdout``, ``stderr`` and ``exit_code`` as a user sees them, without the second or
    more of imports each ``python -m nerve`` pays. An exception the CLI leaves unhandled
    is raised (the traceback a user would see fails the test). What the process itself
    does (signals, Ctrl-C, the entry point) needs ``python -m nerve``."""
    from nerve.cli import app

    return CliRunner().invoke(app, ["--workspace", str(root), *args], catch_exceptions=False)


def collect_and_load(ws: Workspace, messages: list[dict[str, Any]]) -> None:
    """Collect a batch with the workspace's first write key, log it and load it, as
    ``nerve serve`` does, without a server."""
    import base64

    import orjson

    from nerve.catalog import Catalog
    from nerve.collector import Collector
    from nerve.loader import Loader
    from nerve.log import LogWriter
    from nerve.warehouse import Warehouse

    key = ws.config.sources[0].write_key
    collected = Collector(ws, Catalog.load(ws.events_dir)).collect(
        orjson.dumps({"batch": messages}), endpoint="batch",
        authorization="Basic " + base64.b64encode(f"{key}:".encode()).decode())
    with LogWriter(ws.log_dir, "test") as log:
        log.append(collected.record_batch())
        log.sync()
    with Warehouse.for_workspace(ws) as warehouse:
        Loader(ws.log_dir, warehouse).load_once()


# ----------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running `nerve serve` subprocess."""

    workspace: Workspace
    port: int
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        self.log = self.workspace.root / f"serve-{self.port}-{uuid.uuid4().hex[:6]}.log"
        cmd = [sys.executable, "-m", "nerve", "--workspace", str(self.workspace.root), "serve",
               "--host", "127.0.0.1", "--port", str(self.port), *self.args]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        # one client for every poll: each httpx.get() builds a TLS context, ~50 ms of CPU
        with httpx.Client(timeout=1) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"nerve serve exited {self.process.returncode}:\n"
                                       f"{self.log.read_text(errors='replace')}")
                try:
                    # with --workers, the first worker answers /health while the others
                    # may still be starting: started means the main process has logged
                    # "serving" (read first: a file read is cheaper than a request)
                    if (b'"message":"serving"' in self.log.read_bytes()
                            and http.get(self.url + "/health").status_code == 200):
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"nerve serve did not become healthy:\n{self.log.read_text()}")

    def stop(self, timeout: float = 30.0) -> int:
        """Graceful stop (SIGTERM); returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed or closed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start `nerve serve` for a workspace: ``server = serve(ws)``; stopped at teardown."""
    started: list[Server] = []

    def start(workspace: Workspace, *args: str, port: int | None = None) -> Server:
        server = Server(workspace, port or free_port(), list(args)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# ----------------------------------------------------------------------------- NATS


@dataclass
class Nats:
    """A real ``nats-server`` with JetStream, its store in a folder of its own."""

    store: Path
    port: int = field(default_factory=free_port)
    #: the HTTP monitoring port, whose /healthz says when JetStream is ready
    monitor: int = field(default_factory=free_port)
    #: a token clients must send (``nats://<token>@host:port``), if any
    token: str | None = None
    #: a user and password clients must send (``nats://<user>:<password>@host:port``)
    user: tuple[str, str] | None = None
    #: a folder of PEM files from ``make_certificates``: the server then requires TLS
    #: (``server.pem``, signed by ``ca.pem``) and a client certificate signed by that CA
    tls: Path | None = None
    #: False: a plain NATS server, without JetStream (a missing ``-js``)
    jetstream: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Nats:
        """Start (or start again, on the same port and store)."""
        self.store.mkdir(parents=True, exist_ok=True)
        log = self.store.parent / f"nats-{self.port}.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                ["nats-server", *(["-js"] if self.jetstream else []), "-a", "127.0.0.1",
                 "-p", str(self.port),
                 "-m", str(self.monitor), "-sd", str(self.store),
                 *(["--auth", self.token] if self.token else []),
                 *(["--user", self.user[0], "--pass", self.user[1]] if self.user else []),
                 *(["--tlsverify", "--tlscacert", str(self.tls / "ca.pem"),
                    "--tlscert", str(self.tls / "server.pem"),
                    "--tlskey", str(self.tls / "server.key")] if self.tls else [])],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1) as http:  # one client: see Server.start
            while time.monotonic() < deadline:
                try:  # JetStream answers once the server has recovered its store
                    health = "?js-enabled-only=true" if self.jetstream else ""
                    if http.get(f"http://127.0.0.1:{self.monitor}/healthz{health}"
                                ).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not start:\n{log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: nothing flushed or synced."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def make_certificates(folder: Path) -> Path:
    """A CA (``ca.pem``), and certificates it signed for a server on 127.0.0.1
    (``server.pem``, ``server.key``) and for a client (``client.pem``, ``client.key``);
    also a second CA (``other-ca.pem``) that signed neither. Made with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt install openssl; .ci/run does)")
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                "-days", "2", "-subj", f"/CN=nerve test {ca}")
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, ext in (("server", ["-extfile", "server.ext"]), ("client", [])):
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=nerve test {name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *ext)
    return folder


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[Nats]:
    """A JetStream-enabled ``nats-server`` on a free loopback port (.ci/run installs it)."""
    if shutil.which("nats-server") is None:
        pytest.skip("nats-server is not installed (apt install nats-server; .ci/run does)")
    pytest.importorskip("nats", reason="the NATS client: pip install -e '.[test]'")
    server = Nats(tmp_path / "nats-store").start()
    yield server
    server.stop()


# ----------------------------------------------------------------------------- engines


@dataclass
class Engine:
    """One warehouse engine behind Ibis, for the engine-agnostic suite."""

    name: str
    con: Any  # an ibis backend

    def load(self, table_name: str, data: Any) -> Any:
        """Create (or replace) ``table_name`` from a pyarrow Table; return the Ibis table.

        On PostgreSQL, a database every pytest-xdist worker shares, the table is the
        worker's own (``events_gw1``): two workers loading ``events`` at once read each
        other's rows."""
        if self.name == "postgres":
            table_name += "_" + os.environ.get("PYTEST_XDIST_WORKER", "main")
        if self.name == "spark":
            # temp views: nothing written to a Spark warehouse folder
            frame = self.con._session.createDataFrame(data)  # Spark 4 takes Arrow
            frame.createOrReplaceTempView(table_name)
        else:
            self.con.create_table(table_name, data, overwrite=True)
        return self.con.table(table_name)


def _duckdb() -> Any:
    import ibis

    return ibis.duckdb.connect()


def _postgres() -> Any:
    url = os.environ.get("NERVE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL: set NERVE_TEST_POSTGRES_URL (.ci/run does)")
    import ibis

    return ibis.connect(url)


def _spark() -> Any:
    pyspark = pytest.importorskip("pyspark", reason="Spark: pip install -e '.[spark]'")
    import ibis
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("nerve-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix="nerve-spark-"))
        .getOrCreate()
    )
    del pyspark
    return ibis.pyspark.connect(session)


_ENGINES = {"duckdb": _duckdb, "postgres": _postgres, "spark": _spark}


@pytest.fixture(scope="session", params=list(_ENGINES))
def engine(request: pytest.FixtureRequest) -> Engine:
    return Engine(request.param, _ENGINES[request.param]())


NODE_DIR = Path(__file__).parent / "node"


def chromium() -> str:
    """The headless Chromium to drive, or the test is skipped."""
    found = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                 "google-chrome"))), None)
    if found is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return found


def node_script(script: str, *args: str, timeout: float = 120) -> Any:
    """Run ``tests/node/<script>`` (Playwright) on headless Chromium with ``args``; what
    it printed, as JSON. Skipped without Node.js, its modules or Chromium."""
    import orjson

    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.skip("needs Node.js and `npm install` in tests/node (.ci/run does it)")
    done = subprocess.run([node, str(NODE_DIR / script), chromium(), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)

# ----------------------------------------------------------------------------- event rows

_EVENT_DEFAULTS: dict[str, Any] = {
    "type": "track", "event": None, "name": None, "user_id": None, "anonymous_id": None,
    "group_id": None, "previous_id": None, "original_timestamp": None, "sent_at": None,
    "properties": None, "traits": None, "context": None, "source": "web",
    "historical": False, "schema_version": None,
}


def events_arrow(rows: list[dict[str, Any]]) -> Any:
    """An Arrow table shaped like the warehouse's ``events`` table, from short rows.

    Each row needs ``timestamp`` (a datetime, UTC) and usually ``event`` and ``user_id``;
    ``properties``/``traits``/``context`` may be dicts (stored as JSON text);
    ``message_id`` defaults to a fresh uuid and ``received_at``/``loaded_at`` to ``timestamp``.
    """
    import orjson
    import pyarrow as pa

    from nerve.envelope import ENVELOPE_SCHEMA

    ts = pa.timestamp("us", tz="UTC")
    schema = pa.schema([*(f for f in ENVELOPE_SCHEMA if f.name != "violations"),
                        pa.field("loaded_at", ts)])
    full = []
    for row in rows:
        item = {**_EVENT_DEFAULTS, **row}
        item.setdefault("message_id", str(uuid.uuid4()))
        item.setdefault("received_at", item["timestamp"])
        item.setdefault("loaded_at", item["received_at"])
        for key in ("properties", "traits", "context"):
            if isinstance(item[key], dict):
                item[key] = orjson.dumps(item[key]).decode()
        full.append({name: item[name] for name in schema.names})
    return pa.Table.from_pylist(full, schema=schema)


@pytest.fixture
def events_table() -> Callable[[list[dict[str, Any]]], Any]:
    """``events_arrow``, for tests that take it as a fixture."""
    return events_arrow
