"""``nerve demo`` end to end: workspace, server, traffic through the SDK, load, summary.

The server runs as a ``nerve serve`` subprocess rather than in this process: it is the
real deployment shape (the demo talks to it only over HTTP, like any app would), and on a
small machine the server validates and loads on one core while this process simulates
and sends on the other.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from nerve.demo import SHOP_DIR
from nerve.demo._scenario import DAY_MS, SimConfig
from nerve.demo._send import Sender
from nerve.demo._simulate import Simulation
from nerve.errors import TransientError, WorkspaceError
from nerve.server import read_server_file
from nerve.workspace import CONFIG_FILE, Workspace, init_workspace

__all__ = ["TRUTH_FILE", "DemoServer", "SendReport", "make_config", "prepare_workspace",
           "send_simulation", "wait_until_loaded", "write_ground_truth"]

TRUTH_FILE = "ground_truth.json"
_BUNDLED = ("events", "metrics", "experiments")
#: single files of the shop copied next to nerve.toml
_BUNDLED_FILES = ("checks.yaml",)
_MARKER = "[demo]"


def prepare_workspace(directory: Path) -> Workspace:
    """Create the demo workspace, or reset the data of an earlier demo in ``directory``.

    Refuses a folder that holds anything else: the demo never overwrites your files.
    """
    root = directory.resolve()
    config = root / CONFIG_FILE
    if config.exists():
        text = config.read_text(encoding="utf-8")
        if _MARKER not in text.splitlines():
            raise WorkspaceError(f"{root}: a nerve workspace that `nerve demo` did not create; "
                                 "not touching it. Choose another --dir.")
        ws = Workspace.load(root)
        info = read_server_file(ws)
        if info is not None:
            raise WorkspaceError(f"{root}: a nerve server (pid {info['pid']}) still serves "
                                 "this demo; stop it (Ctrl-C) before running the demo again")
        shutil.rmtree(ws.data_dir, ignore_errors=True)
        (root / TRUTH_FILE).unlink(missing_ok=True)
        ws.make_data_dir()
    else:
        if root.exists() and any(root.iterdir()):
            raise WorkspaceError(f"{root}: exists and is not empty; `nerve demo` only creates a "
                                 "new folder or resets an earlier demo. Choose another --dir.")
        init_workspace(root, "shop")
        with config.open("a", encoding="utf-8") as f:
            f.write(_extra_toml())
    for name in _BUNDLED:
        source, target = SHOP_DIR / name, root / name
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name in _BUNDLED_FILES:
        shutil.copyfile(SHOP_DIR / name, root / name)
    return Workspace.load(root)


def _extra_toml() -> str:
    keys = "".join(f'\n[[sources]]\nname = "{name}"\nwrite_key = "{secrets.token_urlsafe(18)}"\n'
                   for name in ("ios", "android"))
    return (f"\n# The shop's apps send with their own keys (web and server are above).{keys}"
            f"\n{_MARKER}\n# created by `nerve demo`: running it again resets .nerve/ and "
            "ground_truth.json,\n# and refreshes events/, metrics/ and experiments/ from "
            "the bundled shop\nbundle = \"shop\"\n")


class DemoServer:
    """A ``nerve serve`` subprocess for the demo workspace."""

    def __init__(self, workspace: Workspace, port: int = 0) -> None:
        self.workspace = workspace
        self.log_path = workspace.data_dir / "demo-server.log"
        cmd = [sys.executable, "-m", "nerve", "--workspace", str(workspace.root), "serve",
               "--host", "127.0.0.1", "--port", str(port)]
        with self.log_path.open("wb") as log:
            # our own interpreter and arguments, no shell
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            self.url = self._wait_ready()
        except BaseException:  # Ctrl-C while it starts: leave no server behind
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TransientError(f"nerve serve exited with {self.process.returncode}:\n"
                                     f"{self.log_path.read_text(errors='replace')[-2000:]}")
            info = read_server_file(self.workspace)
            if info is not None and info.get("pid") == self.process.pid:
                try:
                    if httpx.get(f"{info['url']}/health", timeout=2).status_code == 200:
                        return str(info["url"])
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise TransientError(f"nerve serve did not answer within {timeout:.0f}s; "
                             f"see {self.log_path}")

    def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST ``body`` (GET without one) to the server's API with the admin token."""
        info = read_server_file(self.workspace)
        if info is None:
            raise TransientError(f"the demo server is gone; see {self.log_path}")
        headers = {"Authorization": f"Bearer {info['admin_token']}"}
        if body is None:
            response = httpx.get(f"{self.url}{path}", headers=headers, timeout=300)
        else:
            response = httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=300)
        if response.status_code != 200:
            try:
                message = response.json().get("message")
            except ValueError:
                message = None
            raise TransientError(f"{path}: HTTP {response.status_code}: "
                                 f"{message or response.text[:300]}")
        return response.json()

    def sql(self, query: str) -> list[dict[str, Any]]:
        """Rows of a read-only query, through the server's admin API (it holds the file)."""
        return list(self.api("/v1/admin/sql", {"sql": query})["rows"])

    def loading(self) -> bool:
        """Whether the server's log holds rows not loaded yet and its loader is not
        failing (``GET /v1/status``)."""
        status = self.api("/v1/status")
        return bool(status["log"]["backlog_bytes"] > 0 and not status["loader"]["failing"])

    def wait(self) -> int:
        return self.process.wait()

    def stop(self, timeout: float = 120.0) -> int:
        """Graceful stop: the server loads what its log still holds, then exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@dataclass
class SendReport:
    messages: int
    seconds: float
    undelivered: int
    errors: dict[str, int]


def send_simulation(sim: Simulation, workspace: Workspace, url: str,
                    progress: Callable[[float, int], None] | None = None) -> SendReport:
    """Send every simulated message; ``progress(days_done, messages)`` now and then."""
    started = time.monotonic()
    sender = Sender(workspace, url)
    live_started = False
    start_ms = sim.timeline.start_ms
    try:
        for count, message in enumerate(sim, start=1):
            if message.live and not live_started:
                # the backfill is done before the live minutes begin, as in a real cut-over
                live_started = True
                sender.history.flush()
            sender.send(message)
            if progress is not None and count % 2000 == 0:
                progress(min(message.at - start_ms, sim.timeline.end_ms - start_ms) / DAY_MS,
                         count)
    except BaseException:
        sender.close(timeout=2.0)  # Ctrl-C: don't wait on retries to a stopping server
        raise
    sender.close()
    if progress is not None:
        progress(sim.config.days, sender.sent)
    return SendReport(sender.sent, time.monotonic() - started, sender.undelivered(),
                      dict(sender.errors))


def write_ground_truth(workspace: Workspace, truth: dict[str, Any]) -> Path:
    path = workspace.root / TRUTH_FILE
    path.write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2) + b"\n")
    return path


def wait_until_loaded(sql: Callable[[str], list[dict[str, Any]]], expected: int,
                      progress: Callable[[int], None] | None = None,
                      stall_seconds: float = 30.0,
                      loading: Callable[[], bool] | None = None,
                      poll_seconds: float = 0.25) -> int:
    """Poll the warehouse until it holds ``expected`` rows (events plus quarantine), or
    nothing has changed for ``stall_seconds`` while ``loading()`` says the server has
    nothing left to load; returns the rows found.

    A count that stands still is not enough to give up on: after a slow load the loader
    rests three times as long before the next one (``nerve.loader._pace``), which on a
    busy machine is longer than ``stall_seconds``, with rows still in the log."""
    last, last_change = -1, time.monotonic()
    while True:
        row = sql("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM quarantine) "
                  "AS n")[0]
        loaded = int(row["n"])
        if progress is not None:
            progress(loaded)
        if loaded >= expected:
            return loaded
        if loaded != last:
            last, last_change = loaded, time.monotonic()
        elif time.monotonic() - last_change > stall_seconds:
            if loading is None or not loading():
                return loaded
            last_change = time.monotonic()
        time.sleep(poll_seconds)


def end_of_simulation() -> datetime:
    """Now, to the second: the simulated traffic ends where real time is."""
    return datetime.now(UTC).replace(microsecond=0)


def make_config(days: int, users: int, seed: int, *, incidents: bool = True,
                faults: bool = True, end: datetime | None = None) -> SimConfig:
    return SimConfig(end=end or end_of_simulation(), days=days, users=users, seed=seed,
                     incidents=incidents, faults=faults)

