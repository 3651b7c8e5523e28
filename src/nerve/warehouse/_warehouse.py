"""Warehouse: the one DuckDB database instance of a process, read through Ibis.

DuckDB lets one process open a database file (read-write) at a time, and a connection is
not meant to be shared by threads: each thread takes its own cursor of the one instance.
The loader writes through ``cursor()``; readers use ``ibis()`` (a backend per thread) or
``query()`` (a fresh cursor per call).
"""

from __future__ import annotations

import re
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import duckdb
import ibis
import pyarrow as pa

from nerve.errors import QueryError, WarehouseLockedError, WorkspaceError, redact_url
from nerve.warehouse._readonly import check_read_only
from nerve.warehouse._result import mark_json_columns
from nerve.warehouse._schema import ensure_schema
from nerve.warehouse._typed_views import refresh_typed_views
from nerve.workspace import Workspace, duckdb_file

if TYPE_CHECKING:
    from nerve.catalog import Catalog

__all__ = ["DATA_ERRORS", "Warehouse"]

#: errors caused by the rows themselves (a value the table refuses): retrying the same rows
#: fails the same way, unlike a lock, a full disk or a missing table
DATA_ERRORS: tuple[type[BaseException], ...] = (
    duckdb.DataError,
    duckdb.IntegrityError,
    duckdb.InvalidInputException,
    pa.ArrowInvalid,
    pa.ArrowTypeError,
)

_PREFIX = "duckdb://"
CHECKPOINT_THRESHOLD = "256MB"
_LOCK_PID = re.compile(r"PID (\d+)")


class IbisReads:
    """``ibis()`` and ``table()`` over a class's ``cursor()``, one backend per thread."""

    _local: threading.local

    def cursor(self) -> duckdb.DuckDBPyConnection:
        raise NotImplementedError

    def ibis(self) -> Any:
        """This thread's Ibis backend over the warehouse (every analysis reads through it)."""
        backend = getattr(self._local, "backend", None)
        if backend is None:
            self._local.cursor = self.cursor()
            backend = ibis.duckdb.from_connection(self._local.cursor)
            self._local.backend = backend
        return backend

    def table(self, name: str) -> Any:
        """An Ibis table of the warehouse: ``wh.table("events")``."""
        return self.ibis().table(name)


class Warehouse(IbisReads):
    """The workspace's warehouse: tables ``events``, ``quarantine``, ``loads``.

    >>> wh = Warehouse.open("duckdb://:memory:")
    >>> wh.query("SELECT count(*) AS n FROM events").to_pylist()
    [{'n': 0}]
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, url: str, *,
                 path: Path | None, read_only: bool) -> None:
        self._con = con
        self.url = url
        self.path = path
        self.read_only = read_only
        self._local = threading.local()
        # weak: a cursor a caller closed and dropped is not kept alive here
        self._cursors: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()
        self._cursors_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, url: str, *, read_only: bool = False,
             threads: int | None = None) -> Warehouse:
        """Open (creating if needed) ``duckdb:///abs/path.duckdb`` or ``duckdb://:memory:``.

        ``read_only`` opens an existing file without taking the write lock away from
        anyone else's reads (``nerve sql`` when no server runs). A file another process
        holds raises ``TransientError``. ``threads`` caps DuckDB's worker threads (its
        default is one per core); on a small machine shared with the collector, 1 costs
        the loader about 40% less CPU per row (docs/storage.md).
        """
        if not url.startswith(_PREFIX):
            raise WorkspaceError(
                f"[warehouse] url {redact_url(url)!r}: the loader writes DuckDB "
                "(duckdb:///path/file.duckdb or duckdb://:memory:)"
            )
        target = url[len(_PREFIX):]
        path: Path | None = None
        if target in ("", ":memory:"):
            database = ":memory:"
            read_only = False  # nothing to protect, and DuckDB refuses read-only memory
        else:
            path = Path(target)
            if not path.is_absolute():
                raise WorkspaceError(
                    f"[warehouse] url {redact_url(url)!r}: a relative path needs a workspace "
                    "(Warehouse.for_workspace resolves it)"
                )
            if read_only and not path.exists():
                raise WorkspaceError(
                    f"{path}: no warehouse yet; it is created when `nerve serve` first loads "
                    "events"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            database = str(path)
        try:
            con = duckdb.connect(database, read_only=read_only)
        except duckdb.IOException as exc:
            raise _lock_error(path, exc) from exc
        try:
            con.execute("SET GLOBAL TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")
            # a query naming a function of an extension DuckDB knows (sql_auto_complete,
            # st_point) made it download and load that extension: readers' queries run
            # here, and nerve needs only the ones built in (json, parquet, icu)
            con.execute("SET GLOBAL autoinstall_known_extensions = false")
            con.execute("SET GLOBAL autoload_known_extensions = false")
            if threads is not None:
                con.execute(f"SET GLOBAL threads = {int(threads)}")
            if not read_only:
                # DuckDB checkpoints when its WAL passes 16 MB by default: with the
                # loader's frequent small commits that is every few commits, and it
                # doubled the CPU per loaded row (benchmarks/load.py); 256 MB keeps
                # checkpoints rare, at the price of a longer WAL replay after a crash
                con.execute(f"SET GLOBAL checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
                ensure_schema(con)
        except BaseException:
            con.close()
            raise
        return cls(con, url, path=path, read_only=read_only)

    @staticmethod
    def file_of(url: str) -> Path | None:
        """The database file a ``duckdb://`` URL names (None for memory or other URLs)."""
        return duckdb_file(url)

    @staticmethod
    def check_url(ws: Workspace) -> None:
        """Refuse a ``[warehouse] url`` that is not a DuckDB file, naming nerve.toml's
        line (and never a password in the URL): every command that reads the warehouse."""
        url = ws.warehouse_url
        line = ws.line_of("warehouse", "url")
        where = f"{ws.root / 'nerve.toml'}{f':{line}' if line else ''}: [warehouse] url"
        if not url.startswith(_PREFIX):
            raise WorkspaceError(
                f"{where} {redact_url(url)!r}: nerve loads "
                "events into DuckDB (duckdb://.nerve/warehouse.duckdb, the default); "
                "PostgreSQL or Spark tables with the same columns can be analysed through "
                "the Python API (docs/storage.md, \"Other engines\")")
        path = url[len(_PREFIX):]
        if "?" in path or "#" in path:
            # the rest of the URL is the file's name: "?threads=1" made a file named
            # "warehouse.duckdb?threads=1", and the threads setting was lost
            raise WorkspaceError(
                f"{where} {redact_url(url)!r}: a DuckDB URL takes no query string or "
                "fragment (duckdb:///path/warehouse.duckdb); set DuckDB's threads with "
                "[warehouse] threads = N")
        if path in ("", ":memory:"):
            # the loader deletes each log segment once its rows are committed, so a
            # warehouse in memory lost every acknowledged event when the server stopped
            raise WorkspaceError(
                f"{where} {url!r}: a warehouse in memory keeps nothing once the process "
                "ends, and the loader deletes the event log as it loads it; name a file: "
                "duckdb://.nerve/warehouse.duckdb (the default) or "
                "duckdb:///path/warehouse.duckdb")

    @classmethod
    def check_exists(cls, ws: Workspace) -> None:
        """Refuse a warehouse file that is not there, naming nerve.toml's line: nothing
        loaded yet, or a misspelt ``[warehouse] url``, or its volume not mounted (where
        creating an empty file answered "0 events")."""
        path = cls.file_of(ws.warehouse_url)
        if path is None or path.exists():
            return
        line = ws.line_of("warehouse", "url")
        raise WorkspaceError(
            f"{path}: no warehouse yet; it is created when `nerve serve` first loads "
            f"events. If it should be there, check {ws.root / 'nerve.toml'}"
            f"{f':{line}' if line else ''} ([warehouse] url) and that its volume is "
            "mounted")

    @classmethod
    def for_workspace(cls, ws: Workspace, *, read_only: bool = False) -> Warehouse:
        """The warehouse configured in the workspace's nerve.toml (``[warehouse] url``,
        and ``threads`` if set)."""
        section = ws.config.raw.get("warehouse", {})
        threads = section.get("threads") if isinstance(section, dict) else None
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise WorkspaceError(f"{ws.root / 'nerve.toml'}: [warehouse] threads: expected a "
                                 f"whole number >= 1, got {threads!r}")
        cls.check_url(ws)
        path = cls.file_of(ws.warehouse_url)
        if read_only:
            cls.check_exists(ws)
        if path is not None and path.is_relative_to(ws.data_dir):
            ws.make_data_dir()  # mode 0700 when this makes it: the rows are personal data
        return cls.open(ws.warehouse_url, read_only=read_only, threads=threads)

    # ------------------------------------------------------------------ access

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on the one database instance, for one thread; closed by ``close``."""
        self._check_open()
        cursor = self._con.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        # DuckDB draws a progress bar on stdout for long queries, even when stdout is not
        # a terminal: it would break every `--format json`
        cursor.execute("SET enable_progress_bar = false")
        with self._cursors_lock:
            self._cursors.add(cursor)
        return cursor

    def refresh_views(self, catalog: Catalog) -> list[str]:
        """Create or replace the typed per-event views (``evt_<event>``, one column per
        cataloged property) and drop those of events that left the catalog. Call it at
        start-up and after the catalog changes; returns the view names."""
        cursor = self.cursor()
        try:
            return refresh_typed_views(cursor, catalog)
        finally:
            cursor.close()

    def query(self, sql: str) -> pa.Table:
        """Run one read-only query and return its rows; anything else raises ``QueryError``.

        JSON columns come back as text tagged for ``result_json`` to parse.
        """
        check_read_only(sql)
        self._check_open()
        return self.run_query(self._con.cursor(), sql)

    @staticmethod
    def run_query(cursor: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
        """Run a checked query on ``cursor`` in a transaction it rolls back, then close
        the cursor.

        In the main thread the query runs in a thread of its own, so Ctrl-C stops it:
        DuckDB, running in the main thread, sees the signal only now and then, and a long
        query could run to its end.
        """
        if threading.current_thread() is not threading.main_thread():
            return _run_query(cursor, sql)
        with ThreadPoolExecutor(1, thread_name_prefix="nerve-query") as pool:
            running = pool.submit(_run_query, cursor, sql)
            try:
                return running.result()
            except KeyboardInterrupt:
                cursor.interrupt()
                wait([running])  # its transaction rolled back and its cursor closed
                raise

    def close(self) -> None:
        """Close every cursor and the database (the file's lock is released)."""
        if self._closed:
            return
        self._closed = True
        with self._cursors_lock:
            cursors, self._cursors = list(self._cursors), weakref.WeakSet()
        for cursor in cursors:
            cursor.close()
        self._con.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"warehouse {self.url} is closed")

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Warehouse({redact_url(self.url)!r}{', read_only' if self.read_only else ''})"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _query_message(exc: BaseException) -> str:
    """DuckDB's message on one line with its hint, up to where it quotes the query:
    ``Catalog Error: Table with name evnts does not exist! Did you mean "events"?``."""
    text: list[str] = []
    for line in str(exc).strip().splitlines():
        if line.startswith("LINE "):  # the quoted query and a caret under the spot
            break
        if line.strip():
            text.append(line.strip())
    return " ".join(text) or type(exc).__name__


#: tables nerve makes on first use -> what makes them
_MADE_LATER = {"check_results": "no checks have run yet (nerve check); check_results is "
                                "made by the first run"}


def _not_yet(exc: duckdb.Error) -> str | None:
    """What to say of a query on a table nerve has not made yet: DuckDB's own message
    suggested another table (``Did you mean "erasures"?``)."""
    if isinstance(exc, duckdb.CatalogException):
        for table, message in _MADE_LATER.items():
            if f"table with name {table} does not exist" in str(exc).lower():
                return message
    return None


def _lock_error(path: Path | None, exc: duckdb.IOException) -> Exception:
    message = str(exc)
    if "lock" not in message.lower():
        return WorkspaceError(f"{path}: cannot open the warehouse: {_first_line(exc)}")
    pid = _LOCK_PID.search(message)
    holder = f"process {pid.group(1)}" if pid else "another process"
    return WarehouseLockedError(
        f"{path}: the warehouse is locked by {holder}; if that is `nerve serve`, "
        "`nerve sql` goes through it while .nerve/server.json names it, "
        "otherwise stop that process and retry",
        pid=int(pid.group(1)) if pid else None,
    )


def _run_query(cursor: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    try:
        cursor.execute("SET TimeZone = 'UTC'")
        cursor.execute("BEGIN TRANSACTION")
        try:
            result = cursor.execute(sql)
            description = result.description or []
            table = result.to_arrow_table()
        except duckdb.Error as exc:
            raise QueryError(_not_yet(exc) or _query_message(exc)) from exc
        finally:
            cursor.execute("ROLLBACK")  # a write that slipped past the check never sticks
    finally:
        cursor.close()
    json_columns = {i for i, d in enumerate(description) if str(d[1]).upper() == "JSON"}
    return mark_json_columns(table, json_columns)
