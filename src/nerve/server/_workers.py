"""Ingest worker processes: ``nerve serve --workers N``.

One Python process parses JSON on one core. With ``--workers N`` (N > 1) the main process
(which owns the warehouse, the loader, the checks and the read APIs) starts N worker
processes that accept on the port, each on a listening socket of its own (``SO_REUSEPORT``,
see ``_run._bind_group``); the main process itself no longer does.
A worker runs the same collector over its own log writer (``collector-<i>``, a folder of
its own: the log is per writer by design) and answers ingest itself; anything else (read
APIs) it forwards to the main process over a private loopback port, so every URL works
whichever process accepted the connection. Ingest so never shares a process (and its
GIL) with a load or a query, and the main process's loader runs at a lower CPU priority.

Workers die with the main process (Linux ``PR_SET_PDEATHSIG``), so a crash of the main
process never leaves a worker holding the port or its log folder. On a clean stop the
main process stops them first (each finishes its in-flight requests and syncs its log),
then drains every writer's log into the warehouse.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from nerve.catalog import Catalog
from nerve.collector import RequestError
from nerve.errors import CatalogError, InternalError, PayloadError, TransientError
from nerve.log import open_log
from nerve.server._app import create_app
from nerve.server._audit import CLIENT_HEADER
from nerve.server._backpressure import max_backlog, watch_backlog
from nerve.server._commit import seal_old_segments
from nerve.server._errors import nerve_error_response
from nerve.server._logging import setup_json_logging
from nerve.server._reload import (
    Fingerprint,
    catalog_fingerprint,
    catalog_problems,
    start_watching,
)
from nerve.server._state import NerveState, NoWarehouse, uvicorn_config
from nerve.workspace import Workspace

__all__ = ["Spawner", "spawn_workers", "stop_workers", "worker_cpus", "worker_main"]

logger = logging.getLogger("nerve.server")

_READY = b"nerve-worker-ready\n"
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                         "content-encoding", "host", "upgrade", "te", "trailer"})
_PR_SET_PDEATHSIG = 1


def worker_cpus(workers: int) -> list[int]:
    """The CPU of each worker (``--pin-workers``): the CPUs this process may use, in turn.

    Pinned, a worker's threads stay on their core. Unpinned on 2 cores, with the loader's
    idle-priority thread taking the CPU time they leave, the scheduler moved them around
    it, and p99 at 120k events/s was 100-250 ms instead of ~40 ms (docs/collector.md,
    fifth round).
    """
    allowed = sorted(os.sched_getaffinity(0))
    return [allowed[i % len(allowed)] for i in range(workers)]


def spawn_workers(workspace: Workspace, socks: Sequence[socket.socket], indexes: Sequence[int],
                  upstream: str, writer_id: str, timeout: float = 120.0,
                  cpus: Sequence[int] | None = None,
                  catalog: Catalog | None = None) -> list[subprocess.Popen[bytes]]:
    """Start a worker process for each index (1-based), accepting on ``socks[index - 1]``
    (its log writer is ``<writer_id>-<index>``), pinned to ``cpus[index - 1]`` if given;
    return once each is ready.

    Each worker gets ``workspace`` and ``catalog`` (what this server serves with) on its
    standard input. A worker restarted after a crash thus keeps the nerve.toml settings
    the server started with (an edited [privacy] policy must not apply to some events
    only), and starts with ``catalog`` while events/ does not load, instead of failing to
    start again and again.
    """
    handed = pickle.dumps((workspace, catalog))
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for index in indexes:
            sock = socks[index - 1]
            cpu = "-" if cpus is None else str(cpus[index - 1])
            cmd = [sys.executable, "-m", "nerve.server._worker_main", str(sock.fileno()),
                   str(index), str(workspace.root), upstream, f"{writer_id}-{index}",
                   str(os.getpid()), cpu]
            # a process group of its own: Ctrl-C in a terminal signals the foreground
            # group, and reached the workers too; while they started, that failed the
            # server's start with tracebacks instead of a clean stop. The main process
            # stops them (SIGTERM, stop_workers), and they die with it (PDEATHSIG)
            worker = subprocess.Popen(  # noqa: S603 - our interpreter, our module
                cmd, pass_fds=[sock.fileno()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                process_group=0)
            workers.append(worker)
            assert worker.stdin is not None
            # if it died, its exit is reported below. close() writes what write() left in
            # the buffer, and closes the pipe even when that raises
            with contextlib.suppress(BrokenPipeError):
                worker.stdin.write(handed)
            with contextlib.suppress(BrokenPipeError):
                worker.stdin.close()
        for worker in workers:
            assert worker.stdout is not None
            ready, _, _ = select.select([worker.stdout], [], [], timeout)
            if not ready:
                raise InternalError(f"nerve serve: worker process {worker.pid} did not report "
                                    f"ready within {timeout:.0f} s; see its output above")
            if worker.stdout.readline() != _READY:
                raise InternalError(f"nerve serve: worker process {worker.pid} exited while "
                                    f"starting ({_exit_reason(worker)}); see its output above")
    except BaseException:
        stop_workers(workers, timeout=5)
        raise
    return workers


def _exit_reason(worker: subprocess.Popen[bytes], wait: float = 5.0) -> str:
    """How a worker that closed its output ended: its exit code, or the signal that killed it."""
    try:
        code = worker.wait(timeout=wait)  # its output closes a moment before it is reaped
    except subprocess.TimeoutExpired:
        return "still running, with its output closed"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:  # a signal Python has no name for
            return f"killed by signal {-code}"
    return f"exit code {code}"


def stop_workers(workers: list[subprocess.Popen[bytes]], timeout: float = 40.0) -> None:
    """Graceful stop (SIGTERM: finish in-flight requests, sync the log); then SIGKILL."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()


class _SlowBodyError(Exception):
    """A forwarded body took longer than ``body_timeout_seconds`` to come."""


async def _within(stream: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    """``stream``, raising _SlowBodyError once it has taken more than ``seconds`` in all
    (0: no deadline). The main process times out a slow body itself, but this worker
    sends the whole body before it reads the answer: the client's connection was held
    for as long as it dripped one."""
    deadline = asyncio.get_running_loop().time() + seconds if seconds else None
    chunks = stream.__aiter__()
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _SlowBodyError from None
        yield chunk


async def _forward(request: Request) -> Response:
    """Answer a non-ingest request by asking the main process."""
    client: httpx.AsyncClient = request.app.state.upstream
    seconds: float = request.app.state.nerve.body_timeout
    # the main process audits the request under the client's address, not this worker's
    headers = [(k, v) for k, v in request.headers.items()
               if k.lower() not in _HOP_BY_HOP and k.lower() != CLIENT_HEADER]
    if request.client is not None:
        headers.append((CLIENT_HEADER, request.client.host))
    # the path as the client sent it, still percent-encoded: decoded, an escaped control
    # character (``%1B``) is a URL httpx refuses, and the client got a 500
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(request.url.path)
    try:
        # streamed, not read whole first: a worker buffered any body it was sent (400 MB
        # to an unknown path, no token needed: +400 MB resident, kept), though the main
        # process refuses a read request over 1 MiB and answers 401 without reading one
        answer = await client.request(request.method, path,
                                      params=request.url.query, headers=headers,
                                      content=_within(request.stream(), seconds))
    except ClientDisconnect:  # gone before its body had all come: nobody to answer
        return Response(status_code=400)
    except _SlowBodyError:
        return nerve_error_response(RequestError(
            f"the request body took more than {seconds:g}s to arrive", status=408,
            code="body_timeout", details={"limit_seconds": seconds}))
    except httpx.InvalidURL as exc:  # what the main process could not be asked either
        return nerve_error_response(PayloadError(
            f"the request's URL cannot be read: {exc}", code="invalid_http"))
    except httpx.HTTPError as exc:
        return nerve_error_response(TransientError(
            f"the main nerve process did not answer: {exc}", retry_after=2))
    response = Response(answer.content, status_code=answer.status_code)
    response.raw_headers.extend(_answer_headers(answer.headers))
    return response


def _answer_headers(headers: httpx.Headers) -> list[tuple[bytes, bytes]]:
    """The main process's answer headers, less those this worker's own stack sets again.

    uvicorn writes a ``date`` header on every answer, and the CORS middleware (the same
    policy as the main process's) appends ``Origin`` to ``vary``: passed on as they came,
    a forwarded answer had two ``date`` headers and ``vary: Origin, Origin``. Repeated
    headers (``set-cookie``) stay repeated.
    """
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers.raw:
        key = name.lower()
        if key.decode("latin-1") in _HOP_BY_HOP or key == b"date":
            continue
        if key == b"vary":
            others = b", ".join(v for v in (p.strip() for p in value.split(b","))
                                if v and v.lower() != b"origin")
            if others:
                kept.append((key, others))
            continue
        kept.append((key, value))
    return kept


class Spawner:
    """Runs ``start`` (which starts worker processes) on one thread that lives as long as
    the server.

    A worker dies with the thread that started it: ``PR_SET_PDEATHSIG`` fires when the
    parent *thread* ends, not only the process. A pool thread may end while the server
    runs (anyio ends one idle for 10 s as soon as another call comes, and the catalog
    watcher calls every second), and with it every worker it had started: SIGKILL in the
    middle of taking events. This executor's one thread waits for work until ``close``.
    """

    def __init__(self, start: Callable[[Sequence[int] | None], list[subprocess.Popen[bytes]]]
                 ) -> None:
        self._start = start
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nerve-spawner")

    async def __call__(self, indexes: Sequence[int] | None) -> list[subprocess.Popen[bytes]]:
        return await asyncio.wrap_future(self._thread.submit(self._start, indexes))

    def close(self) -> None:
        """End the thread; only once the workers it started have stopped."""
        self._thread.shutdown(wait=False)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker_lifespan(state: NerveState, upstream: str, fingerprint: Fingerprint,
                     index: str) -> Callable[[Starlette], Any]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watcher = asyncio.create_task(watch_backlog(state, max_backlog(state.workspace)))
        sealer = asyncio.create_task(seal_old_segments(state))
        # this process's collector follows events/ on its own (docs/catalog.md)
        reloader = start_watching(state, fingerprint, process=f"worker {index}")
        async with httpx.AsyncClient(base_url=upstream, timeout=300) as client:
            app.state.upstream = client
            sys.stdout.buffer.write(_READY)
            sys.stdout.flush()
            try:
                yield
            finally:
                for task in (watcher, sealer, reloader):
                    if task is None:
                        continue
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                state.commit.flush_tally()  # the last refusals' counts
                state.log.close()  # every acknowledged batch was synced; this seals it

    return lifespan


def _load_catalog(workspace: Workspace, served: Catalog | None, index: str
                  ) -> tuple[Catalog, list[str]]:
    """events/ as it is now; when it does not load, the catalog the server serves with,
    and the problems. Raises CatalogError when there is none."""
    try:
        return Catalog.load(workspace.events_dir), []
    except CatalogError as exc:
        if served is None:
            raise
        problems = catalog_problems(exc)
        logger.warning("events/ does not load; this worker starts with the catalog the "
                       "server is serving with", extra={"role": f"worker {index}",
                                                        "problems": problems})
        return served, problems


def worker_main(argv: list[str]) -> None:
    """Entry point of a worker process (started by ``spawn_workers``)."""
    fd, index, _root, upstream, writer_id, parent, cpu = argv  # root: for ps to show
    _die_with_parent(int(parent))
    if cpu != "-":  # every thread so far (imports start some); later ones inherit it
        for thread in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(thread), {int(cpu)})
    # the server's workspace and catalog (spawn_workers), read first: it waits for that
    handed: tuple[Workspace, Catalog | None] = pickle.loads(  # noqa: S301 - our parent's
        sys.stdin.buffer.read())
    sys.stdin.close()
    workspace, served = handed
    setup_json_logging()
    fingerprint = catalog_fingerprint(workspace.events_dir)  # before the load, as in _run
    catalog, problems = _load_catalog(workspace, served, index)
    state = NerveState(workspace=workspace, catalog=catalog,
                       warehouse=NoWarehouse("a worker process has no warehouse; read APIs "
                                             "are forwarded"),
                       log=open_log(workspace, writer_id),
                       admin_token="", url=upstream,
                       log_factory=lambda: open_log(workspace, writer_id),
                       processes=int(os.environ.get("NERVE_SERVE_PROCESSES", "1")))
    state.catalog_problems = problems
    app = create_app(state, _worker_lifespan(state, upstream, fingerprint, index),
                     metrics=False,
                     read_routes=[Route("/{path:path}", _forward,
                                        methods=["GET", "POST", "PUT", "PATCH", "DELETE"])])
    sock = socket.socket(fileno=int(fd))
    # limit_concurrency: past it uvicorn answers 503 at once instead of queueing memory
    server = uvicorn.Server(uvicorn_config(app, workspace))
    for sig in (signal.SIGINT, signal.SIGTERM):  # see _run.serve: exit 0 on a clean stop
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
