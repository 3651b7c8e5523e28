"""``nerve serve``: open the workspace's stages, serve HTTP, shut down without losing data.

Start: load the catalog, open the warehouse and the event log, start the loader thread,
bind the socket, write ``.nerve/server.json`` (url, pid, admin token; mode 0600).
Stop (SIGTERM or Ctrl-C): stop accepting, finish in-flight requests, close the log,
drain it into the warehouse one last time, remove server.json, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import secrets
import shutil
import signal
import socket
import stat
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nerve._cpu import start_shared_pools
from nerve.audit import Audit, audit_dir
from nerve.catalog import Catalog
from nerve.errors import InternalError, TransientError, UserError, WorkspaceError
from nerve.loader import Loader, StreamLoader
from nerve.log import StreamSettings, StreamWriter, open_log
from nerve.pipeline import allow_sensitive_problems
from nerve.server._app import create_app
from nerve.server._backpressure import max_backlog, watch_backlog
from nerve.server._commit import seal_old_segments
from nerve.server._errors import error_response
from nerve.server._logging import setup_json_logging
from nerve.server._metrics import prepare_metrics_dir
from nerve.server._readers import load_readers
from nerve.server._reload import (
    Fingerprint,
    catalog_fingerprint,
    reload_seconds,
    start_watching,
)
from nerve.server._state import NerveState, NoWarehouse, uvicorn_config
from nerve.server._workers import Spawner, spawn_workers, stop_workers, worker_cpus
from nerve.warehouse import MaskedWarehouse, Warehouse
from nerve.workspace import Workspace

__all__ = ["SERVER_FILE", "read_server_file", "serve"]

SERVER_FILE = "server.json"
#: one process writes one series of log segments; the loader drains them all
WRITER_ID = "collector"
#: seconds between loader passes: bigger micro-batches cost the warehouse less per row
LOADER_INTERVAL = 1.0
#: seconds between the main process's looks at its worker processes
_SUPERVISE_SECONDS = 1.0
#: starts the worker processes of the given indexes (1-based; None: all of them)
StartWorkers = Callable[[Sequence[int] | None], list[subprocess.Popen[bytes]]]
#: how many processes accept events, for the workers' share of rate limits
PROCESSES_ENV = "NERVE_SERVE_PROCESSES"

logger = logging.getLogger("nerve.server")


def read_server_file(workspace: Workspace) -> dict[str, Any] | None:
    """The running server's ``{"url", "pid", "admin_token"}``, or None when none runs."""
    path = workspace.data_dir / SERVER_FILE
    try:
        info = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    if not isinstance(info, dict) or not _alive(info.get("pid")):
        return None
    return info


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_server_file(path: Path, info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # created 0600 from the start: the admin token never sits in a world-readable file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(info, option=orjson.OPT_INDENT_2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _raise_open_files_limit() -> None:
    """Let this process (and the workers it starts) open as many files as the system allows.

    Every connection takes a file descriptor, and so do the log's segments and the
    warehouse's files. The usual soft limit, 1024, is barely above ``max_connections``
    (1000 per process): a flood of connections left the loader failing with "Too many
    open files". The soft limit is raised to the hard one, as Go's runtime does.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 1 << 20) if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:  # a container may refuse it: run with the soft one
            logger.warning("cannot raise the open files limit", extra={
                "soft": soft, "hard": hard, "error": str(exc)})


def _keep_data_private(workspace: Workspace) -> None:
    """``.nerve/`` readable by this user only (0700): made so when missing, tightened
    (and said so) when a workspace made before, or copied, lets other users in."""
    folder = workspace.make_data_dir()
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        folder.chmod(0o700)
        logger.info("%s was open to other users (mode %o); made it readable by this user "
                    "only (700): it holds personal data", folder, mode,
                    extra={"folder": str(folder), "mode": f"{mode:o}"})


def _bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:  # busy, not wrong: free later, or another port
            raise TransientError(f"cannot listen on {host}:{port}: {exc.strerror}; stop what "
                                 "listens there or choose another --port",
                                 retry_after=5) from exc
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}; "
                        "choose another --port") from exc
    sock.listen(2048)  # connections made during start-up wait here, they are not refused
    return sock


def _bind_group(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` listening sockets on one port (``SO_REUSEPORT``): one per worker process.

    The kernel then hashes each new connection to one of them, so keep-alive connections
    spread evenly over the workers. With one shared socket the worker that wakes first
    takes each connection, and that was uneven: in most benchmark runs one worker held
    38-43 of the 64 connections and saturated while the other had CPU to spare
    (docs/performance.md, fifth round). This process keeps every socket open, so
    connections queued for a worker that died wait for its replacement.

    A plain bind first: it fails if anything (another ``nerve serve`` included) holds the
    port, which a second ``SO_REUSEPORT`` group of the same user would otherwise share.
    """
    probe = _bind(host, port)
    port = probe.getsockname()[1]
    probe.close()
    with contextlib.ExitStack() as bound:  # a failed bind closes those made before it
        group = [bound.enter_context(_bind(host, port, reuse_port=True)) for _ in range(n)]
        bound.pop_all()
    return group


def _lifespan(state: NerveState, server_file: Path, max_backlog: int,
              on_ready: Callable[[NerveState], None] | None,
              start_workers: StartWorkers,
              workers: list[subprocess.Popen[bytes]],
              fingerprint: Fingerprint,
              listeners: Sequence[socket.socket] = ()) -> Callable[[Starlette], Any]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        assert state.loader is not None
        # with worker processes taking the events, this process only loads, checks and
        # answers the read APIs: its background threads (the loader, the checks, the live
        # anomaly monitor) take only the CPU the workers leave free. At normal priority the
        # live monitor's poll made the slowest seconds of a fixed-rate run
        # (docs/performance.md, sixth round)
        background_idle = state.processes > 1
        if background_idle:
            start_shared_pools()  # at this thread's priority, not the loader's
        state.loader.start(LOADER_INTERVAL, idle=background_idle)
        watcher = asyncio.create_task(watch_backlog(state, max_backlog))
        sealer = asyncio.create_task(seal_old_segments(state))
        # events/ edited while serving: this process's collector, read APIs and typed
        # views follow it (each worker process watches for itself)
        reloader = start_watching(state, fingerprint, process="main", views=(
            state.warehouse if isinstance(state.warehouse, Warehouse) else None))
        _write_server_file(server_file, {"url": state.url, "pid": os.getpid(),
                                         "admin_token": state.admin_token})
        # workers answer /health as soon as they run: server.json must exist by then.
        # What they forward waits in this process's listen queue until it accepts.
        spawner = Spawner(start_workers)
        try:
            workers.extend(await spawner(None))
        except BaseException:
            # a start that fails here (a worker that exits, Ctrl-C meanwhile) stops what
            # already runs: the process exited with the loader's thread inside DuckDB,
            # and C++ aborted it ("terminate called without an active exception", SIGABRT)
            server_file.unlink(missing_ok=True)
            for task in (watcher, sealer, reloader):
                if task is not None:
                    task.cancel()
            spawner.close()
            await anyio.to_thread.run_sync(_drain, state)
            raise
        # the read side's background work: data-quality checks on their schedule, and the
        # per-minute live anomaly monitor (both read the warehouse, never the request path)
        from nerve.anomaly import start_live  # noqa: PLC0415 - the main process only
        from nerve.erasure import RetentionJob, retention_enforced  # noqa: PLC0415
        from nerve.quality import start_scheduler  # noqa: PLC0415

        scheduler = start_scheduler(state, idle=background_idle)
        start_live(state, idle=background_idle)
        # the catalog's retention, enforced daily unless the workspace turns it off
        retention = (RetentionJob(state, idle=background_idle).start()
                     if retention_enforced(state.workspace) else None)
        state.retention_job = retention  # for /v1/status: a failing run shows there
        supervisor = asyncio.create_task(_supervise(workers, spawner))
        if on_ready is not None:
            on_ready(state)
        logger.info("serving", extra={"url": state.url, "workers": len(workers) or 1,
                                      "workspace": str(state.workspace.root)})
        try:
            yield
        finally:
            # uvicorn has stopped accepting and finished in-flight requests by now;
            # the workers finish theirs (up to 30 s) and sync their logs before the
            # final drain
            if workers:
                logger.info("stopping: the worker processes finish their requests",
                            extra={"workers": len(workers)})
            else:
                logger.info("stopping: in-flight requests are done")
            for task in (watcher, sealer, supervisor, reloader):
                if task is None:
                    continue
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            _release_port(listeners if workers else ())
            live = getattr(state, "live_runner", None)
            for background in (scheduler, live, retention):
                try:  # nothing here may keep the log from its final drain
                    if background is not None:
                        await anyio.to_thread.run_sync(background.stop)
                except Exception:
                    logger.exception("stopping a background task failed")
            await anyio.to_thread.run_sync(stop_workers, workers)
            spawner.close()
            logger.info("stopping: draining the log into the warehouse")
            await anyio.to_thread.run_sync(_drain, state)
            server_file.unlink(missing_ok=True)
            logger.info("stopped", extra={"loaded": getattr(state.loader, "totals", None)})

    return lifespan


def _release_port(listeners: Sequence[socket.socket]) -> None:
    """Close this process's copies of the workers' listening sockets, once no worker is
    to be restarted: each worker's own copy keeps its socket open until it stops, and
    then the port refuses connections. Held through the final drain (as long as the log's
    backlog takes to load), they went on accepting connections for nobody: each client
    waited out its timeout and got a reset, not knowing whether its batch was taken."""
    for sock in listeners:
        sock.close()


def _collector_lifespan(state: NerveState, max_backlog: int,
                        on_ready: Callable[[NerveState], None] | None,
                        start_workers: StartWorkers,
                        workers: list[subprocess.Popen[bytes]],
                        fingerprint: Fingerprint,
                        listeners: Sequence[socket.socket] = ()) -> Callable[[Starlette], Any]:
    """``nerve serve --collect-only``: take events into the shared log, nothing else (no
    warehouse, loader, checks or server.json: the server that loads has those)."""
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watcher = asyncio.create_task(watch_backlog(state, max_backlog))
        reloader = start_watching(state, fingerprint, process="main")
        spawner = Spawner(start_workers)
        workers.extend(await spawner(None))
        supervisor = asyncio.create_task(_supervise(workers, spawner))
        if on_ready is not None:
            on_ready(state)
        logger.info("serving", extra={"url": state.url, "workers": len(workers) or 1,
                                      "workspace": str(state.workspace.root),
                                      "collect_only": True})
        try:
            yield
        finally:
            for task in (watcher, supervisor, reloader):
                if task is None:
                    continue
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            _release_port(listeners if workers else ())
            await anyio.to_thread.run_sync(stop_workers, workers)
            spawner.close()
            await anyio.to_thread.run_sync(state.commit.flush_tally)
            await anyio.to_thread.run_sync(state.log.close)
            logger.info("stopped")

    return lifespan


async def _collect_only(request: Request) -> Response:
    return error_response(404, "collect_only", f"{request.url.path}: this server only collects "
                          "events (nerve serve --collect-only); the read APIs are on the "
                          "server that loads the warehouse")


def _none(indexes: Sequence[int] | None) -> list[subprocess.Popen[bytes]]:
    return []  # one process: it takes the events itself


async def _supervise(workers: list[subprocess.Popen[bytes]], start: Spawner) -> None:
    """Start a worker process again when one dies (a crash, an OOM kill), so the port
    keeps as many processes taking events as asked for. Its log folder is the dead one's:
    the new writer cuts a torn tail from the old segment (unless the loader, finding the
    writer gone, did first) and appends to a new one, and the loader loads the old
    segment's whole frames (everything that was acknowledged), then deletes it.

    A worker that exited 0 was stopped on purpose (Ctrl-C reaches the whole process
    group): it is not started again.
    """
    while True:
        await asyncio.sleep(_SUPERVISE_SECONDS)
        for slot, worker in enumerate(workers):
            code = worker.poll()
            if code is None or code == 0:
                continue
            logger.error("a worker process died; starting another",
                         extra={"worker_pid": worker.pid, "exit": code, "worker": slot + 1})
            if worker.stdout is not None:
                worker.stdout.close()
            try:
                [workers[slot]] = await start([slot + 1])
            except Exception:  # tried again on the next round
                logger.exception("starting a worker process failed; retrying")


def _drain(state: NerveState) -> None:
    """Close the log, then load whatever it still holds before exiting.

    A final load that fails (the warehouse's disk full, its file locked) is one error
    line, and the stop goes on: what it did not load stays in the log, which the next
    start loads. It used to end the stop with a traceback, "Application shutdown
    failed", the warehouse left open and server.json left behind.
    """
    commit = getattr(state, "commit", None)
    if commit is not None:  # the last refusals' counts, with nothing after them
        commit.flush_tally()
    state.log.close()
    try:
        if state.loader is not None:
            try:
                state.loader.stop()  # joins the thread, then one final drain
            except Exception as exc:  # noqa: BLE001 - reported; the log keeps the rows
                figure = getattr(state.loader, "backlog_bytes", None)
                try:
                    left = figure() if callable(figure) else None
                except Exception:  # noqa: BLE001 - the figure is a courtesy
                    left = None
                size = "its unloaded data" if left is None else f"{left:,} bytes"
                # an outage (NATS out of reach, a lock) says what it is: the warehouse is fine
                fix = "" if isinstance(exc, TransientError) else (
                    " Make room or fix the warehouse before starting again")
                logger.error(
                    "stopping: the final load into the warehouse failed (%s); the log "
                    "keeps %s, and the next start loads it: nothing acknowledged is lost.%s",
                    str(exc).strip().splitlines()[0] if str(exc).strip()
                    else type(exc).__name__, size, fix,
                    extra={"error": str(exc), "backlog_bytes": left})
    finally:
        close = getattr(state.warehouse, "close", None)
        if callable(close):
            close()


def _check_allow_sensitive(workspace: Workspace, catalog: Catalog) -> None:
    """Refuse ``[privacy] allow_sensitive`` entries that name no sensitive property of the
    catalog, as a metric naming an unknown event is refused."""
    section = workspace.config.raw.get("privacy", {})
    problems = allow_sensitive_problems(section.get("allow_sensitive", []), catalog)
    if problems:
        line = workspace.line_of("privacy", "allow_sensitive")
        where = f"{workspace.root / 'nerve.toml'}{f':{line}' if line else ''}"
        raise WorkspaceError("\n".join(f"{where}: [privacy] allow_sensitive: {problem}"
                                        for problem in problems))


def _open_warehouse(workspace: Workspace, catalog: Catalog) -> tuple[Warehouse, Loader]:
    """The loading server's warehouse and loader, the stream claimed when the log is one.

    Refused (another server loads the stream, NATS went out of reach), a warehouse file
    this call made is removed again: an empty one left behind made the next ``nerve
    status`` show a warehouse of 0 events, on a machine that may not be the one meant
    to hold it."""
    path = workspace.warehouse_file
    made = path is not None and not path.exists()
    warehouse = Warehouse.for_workspace(workspace)
    try:
        warehouse.refresh_views(catalog)  # evt_<event> views with typed columns
        loader = Loader.for_workspace(workspace, warehouse)
        if isinstance(loader, StreamLoader):
            loader.claim()  # another server loading the same stream stops us here
    except BaseException:
        warehouse.close()
        if made and path is not None:
            for each in (path, path.with_name(path.name + ".wal")):
                each.unlink(missing_ok=True)
        raise
    return warehouse, loader


def serve(workspace: Workspace, host: str = "127.0.0.1", port: int = 8700, *,
          workers: int = 1, pin_workers: bool = False, collect_only: bool = False,
          on_ready: Callable[[NerveState], None] | None = None) -> None:
    """Run the collector and read APIs for ``workspace`` until SIGTERM or Ctrl-C.

    ``workers`` > 1: that many worker processes take the events on the port
    (``_workers.py``), and this process keeps the warehouse, the loader, the checks and
    the read APIs, which the workers forward to it. Ingest then never waits behind a
    load or a query (and the loader yields the CPU to it). ``pin_workers``: worker i
    runs on the i-th CPU this process may use only (``_workers.worker_cpus``).

    ``collect_only``: a stateless collector that publishes to the workspace's NATS stream
    (``[log] url``) and nothing else; the one full ``nerve serve`` loads what any number
    of them collect (docs/storage.md).
    """
    if pin_workers and workers < 2:
        raise UserError("--pin-workers pins worker processes to CPUs: it needs --workers 2 "
                        "or more")
    if collect_only and StreamSettings.from_workspace(workspace) is None:
        raise UserError("--collect-only needs a log that another server loads: set [log] "
                        "url = \"nats://host:4222\" in nerve.toml (docs/storage.md). "
                        "The workspace's own log is loaded only by the server that writes it")
    running = None if collect_only else read_server_file(workspace)
    if running is not None:
        raise TransientError(f"nerve serve is already running for {workspace.root} "
                             f"(pid {running['pid']}, {running['url']})", retry_after=5)
    # taken before the load: a change made while it loads is then loaded again
    fingerprint = catalog_fingerprint(workspace.events_dir)
    catalog = Catalog.load(workspace.events_dir)
    _check_allow_sensitive(workspace, catalog)
    reload_seconds(workspace)  # a bad [catalog] reload_seconds stops us here
    if not collect_only:
        # checks.yaml: the scheduler reads it once serving, where a mistake was a traceback
        from nerve.quality import load_config  # noqa: PLC0415 - the checks' engine is heavy

        load_config(workspace.root, workspace.config.raw, catalog)
    admin_token = secrets.token_urlsafe(32)
    readers = load_readers(workspace, admin_token)  # a missing token stops us here
    setup_json_logging()
    _keep_data_private(workspace)
    _raise_open_files_limit()
    # before any metric exists in this process; worker processes inherit the setting
    metrics_folder = prepare_metrics_dir(
        workspace, f"prometheus-collect-{os.getpid()}" if collect_only else "prometheus")
    # with workers, they alone accept events on the port, one socket each; this process
    # serves what they forward on a private one
    public = _bind_group(host, port, workers) if workers > 1 else [_bind(host, port)]
    bound_port = public[0].getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    log = open_log(workspace, WRITER_ID)  # a NATS server that does not answer stops us here
    if isinstance(log, StreamWriter):  # so does another key than the stream's
        try:
            log.link.agree_on_key(workspace.secret(),
                                  who=f"{socket.gethostname()}:{workspace.root}")
        except BaseException:
            log.close()
            raise
    os.environ[PROCESSES_ENV] = str(workers)  # worker processes inherit it
    if collect_only:
        state = NerveState(workspace=workspace, catalog=catalog,
                           warehouse=NoWarehouse("nerve serve --collect-only has no warehouse"),
                           log=log, admin_token=admin_token, processes=workers,
                           log_factory=lambda: open_log(workspace, WRITER_ID),
                           url=f"http://{url_host}:{bound_port}")
    else:
        try:
            warehouse, loader = _open_warehouse(workspace, catalog)
        except BaseException:
            log.close()
            raise
        state = NerveState(
            workspace=workspace, catalog=catalog, warehouse=warehouse, log=log,
            admin_token=admin_token, readers=readers, processes=workers,
            reader_warehouse=MaskedWarehouse(warehouse, catalog, workspace.secret()),
            loader=loader,
            log_factory=lambda: open_log(workspace, WRITER_ID),
            url=f"http://{url_host}:{bound_port}")
    server_file = workspace.data_dir / SERVER_FILE
    children: list[subprocess.Popen[bytes]] = []
    # what this process serves: the port, or with workers a private one they forward to
    served = [_bind("127.0.0.1", 0)] if workers > 1 else public

    def start_workers(indexes: Sequence[int] | None) -> list[subprocess.Popen[bytes]]:
        return spawn_workers(workspace, public, indexes or range(1, workers + 1),
                             f"http://127.0.0.1:{served[0].getsockname()[1]}", WRITER_ID,
                             cpus=worker_cpus(workers) if pin_workers else None,
                             catalog=state.catalog)

    starter = start_workers if workers > 1 else _none
    if collect_only:
        app = create_app(state, _collector_lifespan(state, max_backlog(workspace), on_ready,
                                                    starter, children, fingerprint,
                                                    public),
                         read_routes=[Route("/{path:path}", _collect_only,
                                            methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])
    else:
        app = create_app(state, _lifespan(state, server_file, max_backlog(workspace), on_ready,
                                          starter, children, fingerprint, public),
                         audit=Audit(audit_dir(workspace)))
    server = uvicorn.Server(uvicorn_config(app, workspace))
    # uvicorn re-raises the stop signal after a graceful shutdown; with these no-op
    # handlers in place that re-raise is harmless, and a clean stop exits 0
    previous = {sig: signal.signal(sig, lambda *_: None)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=served)
    finally:
        stop_workers(children, timeout=5)  # only still running if start-up failed
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for each in {*public, *served}:
            each.close()
        if collect_only:  # a folder of this process's own
            shutil.rmtree(metrics_folder, ignore_errors=True)
    if not server.started:
        raise InternalError(f"nerve serve failed to start on {state.url}; see the log above")
