"""A running server picks up catalog changes: events/ edited while ``nerve serve`` runs.

Every process that holds the catalog (the main one and each ``--workers`` process, whose
catalogs are their own) runs ``watch_catalog``. Every ``[catalog] reload_seconds``
(default 1) it takes a fingerprint of events/ (each YAML file's path, size, mtime and
inode: stat calls only, in a thread), and once a change has held still for one look (so
an editor's save is whole) it loads the whole catalog in a thread. Only a catalog that
loads replaces the old one, and what the process derives from it is swapped in one step
on the event loop:

- the collector: its validation rules and its Guard, with the new PII classes. A request
  takes ``state.collector`` once, so it is judged and protected by the old catalog or the
  new one, never a mix, and every request that starts after the swap gets the new rules;
- ``state.catalog``, which the read APIs, the semantic layer, the checks and erasure read
  on each call (metrics/ and experiments/ are read per request: nothing to reload);
- the Prometheus event labels;
- in the main process, the readers' masked warehouse, then the typed ``evt_*`` views.

A catalog that does not load (a YAML error, a half-saved file, an unknown field) changes
nothing: the process serves on with the last good one, logs a warning naming each
problem's file and line, and ``GET /v1/status`` shows them under ``catalog.problems``;
the next change is tried again. The ingest path does no work for any of this.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from nerve.catalog import Catalog
from nerve.collector import Collector
from nerve.errors import CatalogError, WorkspaceError
from nerve.pipeline import allow_sensitive_problems
from nerve.server._state import NerveState
from nerve.workspace import Workspace

if TYPE_CHECKING:  # a worker process has no warehouse: it does not import DuckDB or Ibis
    from nerve.warehouse import MaskedWarehouse, Warehouse

__all__ = ["DEFAULT_RELOAD_SECONDS", "CatalogWatch", "Fingerprint", "catalog_fingerprint",
           "catalog_problems", "reload_seconds", "start_watching", "watch_catalog"]

logger = logging.getLogger("nerve.server")

#: seconds between looks at events/ (``[catalog] reload_seconds``; 0 turns reloading off)
DEFAULT_RELOAD_SECONDS = 1.0
#: problems a warning and ``/v1/status`` list; a broken catalog may have hundreds
_MAX_PROBLEMS = 20

#: (path, size, mtime in ns, inode) of every catalog file, sorted
Fingerprint = tuple[tuple[str, int, int, int], ...]


def reload_seconds(workspace: Workspace) -> float:
    """``[catalog] reload_seconds``: how often a running server looks at events/."""
    section = workspace.config.raw.get("catalog") or {}
    value = section.get("reload_seconds", DEFAULT_RELOAD_SECONDS) \
        if isinstance(section, dict) else DEFAULT_RELOAD_SECONDS
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise WorkspaceError(f"{workspace.root / 'nerve.toml'}: [catalog] reload_seconds: "
                             f"expected a number >= 0 (0: never reload), got {value!r}")
    return float(value)


def catalog_fingerprint(events_dir: Path) -> Fingerprint:
    """What the catalog's files look like, cheaply: each ``*.yaml``/``*.yml`` under
    ``events_dir`` (``versions/`` and ``groups/`` included) by path, size, mtime and
    inode (an editor that saves by renaming a new file over the old changes the inode).

    >>> catalog_fingerprint(Path("/nonexistent"))
    ()
    """
    found: list[tuple[str, int, int, int]] = []
    for folder, _dirs, files in os.walk(events_dir):
        for name in files:
            if not name.endswith((".yaml", ".yml")):
                continue
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue  # removed while we looked: the next look sees it gone
            found.append((path, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(sorted(found))


class CatalogWatch:
    """When to load the catalog again, and loading it.

    ``loaded`` is the fingerprint taken just before the catalog in use was loaded (a
    change made while it loaded then counts as a change, and is loaded again).
    """

    def __init__(self, events_dir: Path, loaded: Fingerprint) -> None:
        self.events_dir = events_dir
        #: the files as last loaded, or as last failed to load (not tried again)
        self.tried = loaded
        #: the files at the last look
        self.seen = loaded

    def settled_change(self) -> Fingerprint | None:
        """The files' fingerprint if they changed since last tried and held still since
        the previous look; else None."""
        now = catalog_fingerprint(self.events_dir)
        settled = now == self.seen
        self.seen = now
        return now if settled and now != self.tried else None

    def load(self, fingerprint: Fingerprint) -> Catalog | None:
        """The catalog as the files of ``fingerprint`` say; None when they changed while
        it loaded (the next looks try again once they hold still).

        Raises CatalogError for a catalog that does not load; it is not tried again until
        the files change.
        """
        try:
            catalog = Catalog.load(self.events_dir)
        except CatalogError:
            if catalog_fingerprint(self.events_dir) == fingerprint:
                self.tried = fingerprint
                raise
            return None  # a file was being written as we read it: not its final state
        except OSError:
            return None  # a file vanished between listing and reading: try again
        if catalog_fingerprint(self.events_dir) != fingerprint:
            return None
        self.tried = fingerprint
        return catalog


@dataclass(frozen=True)
class _Derived:
    """What a process builds from a new catalog before it swaps it in."""

    catalog: Catalog
    collector: Collector
    reader_warehouse: MaskedWarehouse | None


def _derive(state: NerveState, catalog: Catalog) -> _Derived:
    """The new catalog's collector (rules, Guard) and masked reader view, built off the
    event loop."""
    masked = None
    if state.reader_warehouse is not None:  # the main process: the warehouse is imported
        from nerve.warehouse import MaskedWarehouse, Warehouse  # noqa: PLC0415

        if isinstance(state.warehouse, Warehouse):
            masked = MaskedWarehouse(state.warehouse, catalog, state.workspace.secret())
    return _Derived(catalog, Collector(state.workspace, catalog), masked)


def _swap(state: NerveState, new: _Derived) -> None:
    """Put the new catalog in use, in one step of the event loop (no await in between):
    no request sees the new rules beside the old privacy classes, or the reverse."""
    state.collector = new.collector
    state.catalog = new.catalog
    if new.reader_warehouse is not None:
        state.reader_warehouse = new.reader_warehouse
    if state.metrics is not None:
        state.metrics.recatalog(new.catalog.names())
    state.catalog_problems = []
    state.catalog_loaded_at = time.time()


def catalog_problems(exc: CatalogError) -> list[str]:
    """A catalog's load problems as ``/v1/status`` and the logs list them (the first 20)."""
    lines = [f"{where}: {what}" for where, what in exc.problems]
    if len(lines) > _MAX_PROBLEMS:
        lines[_MAX_PROBLEMS:] = [f"... and {len(lines) - _MAX_PROBLEMS} more problems"]
    return lines


async def _refresh_views(warehouse: Warehouse, catalog: Catalog) -> bool:
    """Refresh the typed views; False (logged) when the warehouse refused, to retry."""
    try:
        views = await anyio.to_thread.run_sync(warehouse.refresh_views, catalog)
    except Exception:
        logger.exception("refreshing the typed evt_* views failed; retrying at the next look")
        return False
    logger.info("typed views refreshed", extra={"views": len(views)})
    return True


def _warn_allow_sensitive(workspace: Workspace, catalog: Catalog, process: str) -> None:
    """Say when ``[privacy] allow_sensitive`` names what the edited catalog no longer has
    as sensitive (a renamed property is now dropped, not kept). At start this refuses to
    serve; a reload does not stop serving for it."""
    allowed = workspace.config.raw.get("privacy", {}).get("allow_sensitive", [])
    problems = allow_sensitive_problems(allowed, catalog)
    if problems:
        logger.warning("[privacy] allow_sensitive names no sensitive property of the edited "
                       "catalog: fix nerve.toml or the catalog (nerve serve refuses this at "
                       "start)", extra={"role": process, "problems": problems})


async def watch_catalog(state: NerveState, watch: CatalogWatch, every: float, *,
                        process: str, views: Warehouse | None = None) -> None:
    """Reload the catalog when events/ changes (see the module docstring), for ever.

    ``process`` names this process in the logs (``main``, ``worker 2``); ``views``: the
    warehouse whose typed views follow the catalog (the main process's).
    """
    stale_views: Catalog | None = None
    while True:
        await asyncio.sleep(every)
        try:
            if (stale_views is not None and views is not None
                    and await _refresh_views(views, stale_views)):
                stale_views = None
            change = await anyio.to_thread.run_sync(watch.settled_change)
            if change is None:
                continue
            try:
                catalog = await anyio.to_thread.run_sync(watch.load, change)
            except CatalogError as exc:
                state.catalog_problems = catalog_problems(exc)
                logger.warning("the catalog did not load; still serving with the previous one "
                               "until events/ is fixed", extra={
                                   "role": process, "problems": state.catalog_problems})
                continue
            if catalog is None:
                continue
            new = await anyio.to_thread.run_sync(_derive, state, catalog)
            _swap(state, new)
            logger.info("catalog reloaded", extra={"role": process,
                                                   "events": len(catalog)})
            _warn_allow_sensitive(state.workspace, catalog, process)
            if views is not None and not await _refresh_views(views, catalog):
                stale_views = catalog
        except Exception:  # never let a reload take the server down: try at the next look
            logger.exception("reloading the catalog failed; still serving with the previous "
                             "one", extra={"role": process})


def start_watching(state: NerveState, fingerprint: Fingerprint, *, process: str,
                   views: Warehouse | None = None) -> asyncio.Task[Any] | None:
    """The ``watch_catalog`` task for this process, or None when reloading is off."""
    every = reload_seconds(state.workspace)
    if every <= 0:
        return None
    watch = CatalogWatch(state.workspace.events_dir, fingerprint)
    return asyncio.create_task(watch_catalog(state, watch, every, process=process,
                                             views=views))
