"""The workspace: a folder under version control holding nerve.toml, events/ and metrics/.

Runtime data (the event log, the DuckDB warehouse) lives in ``.nerve/`` inside it, which
``nerve init`` git-ignores. The file format is documented in docs/workspace.md.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerve.errors import WorkspaceError

__all__ = ["CollectorLimits", "Source", "Workspace", "WorkspaceConfig", "init_workspace"]

CONFIG_FILE = "nerve.toml"
DATA_DIR = ".nerve"


@dataclass(frozen=True, slots=True)
class Source:
    """Something that sends events, identified by its write key."""

    name: str
    write_key: str
    #: a source of historical imports (backfills): judged by volume, schema and duplicate
    #: checks but not by lateness and freshness
    historical: bool = False


@dataclass(frozen=True, slots=True)
class CollectorLimits:
    max_event_bytes: int = 32 * 1024
    max_request_bytes: int = 500 * 1024
    max_batch_events: int = 2500


@dataclass(frozen=True, slots=True)
class WorkspaceConfig:
    name: str
    sources: tuple[Source, ...]
    warehouse_url: str
    timezone: str = "UTC"
    collector: CollectorLimits = field(default_factory=CollectorLimits)
    #: the whole parsed file, for sections owned by later stages ([privacy], [checks], ...)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Workspace:
    """A loaded workspace. Paths are absolute."""

    root: Path
    config: WorkspaceConfig

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @property
    def data_dir(self) -> Path:
        return self.root / DATA_DIR

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    def secret(self) -> bytes:
        """The workspace's key for keyed hashes: ``$NERVE_SECRET``, else ``.nerve/secret.key``.

        Created (random, mode 0600) on first use. Losing it makes new hashes differ from
        old ones; leaking it lets anyone test guesses against the hashes.
        """
        env = os.environ.get("NERVE_SECRET")
        if env:
            return env.encode()
        path = self.data_dir / "secret.key"
        try:
            return path.read_bytes().strip()
        except FileNotFoundError:
            pass
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        return key

    def source_for_key(self, write_key: str) -> Source | None:
        for source in self.config.sources:
            if secrets.compare_digest(source.write_key, write_key):
                return source
        return None

    @property
    def warehouse_url(self) -> str:
        """The warehouse URL with a relative DuckDB path resolved against the workspace."""
        url = self.config.warehouse_url
        prefix = "duckdb://"
        if url.startswith(prefix):
            path = url[len(prefix) :]
            if path and path != ":memory:" and not Path(path).is_absolute():
                return prefix + str(self.root / path)
        return url

    @classmethod
    def load(cls, root: Path | str | None = None) -> Workspace:
        """Load the workspace at ``root``, else ``$NERVE_WORKSPACE``, else the current folder."""
        if root is None:
            root = os.environ.get("NERVE_WORKSPACE") or Path.cwd()
        root = Path(root).resolve()
        path = root / CONFIG_FILE
        if not path.is_file():
            raise WorkspaceError(
                f"{path}: not a nerve workspace (no {CONFIG_FILE}); "
                "create one with `nerve init DIR` or pass --workspace DIR"
            )
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise WorkspaceError(f"{path}: {exc}") from exc
        return cls(root=root, config=_parse_config(raw, path))


def _parse_config(raw: dict[str, Any], path: Path) -> WorkspaceConfig:
    def fail(field_name: str, problem: str) -> WorkspaceError:
        return WorkspaceError(f"{path}: {field_name}: {problem}")

    project = raw.get("project", {})
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        raise fail("[project] name", "required, a string")
    sources = []
    seen: set[str] = set()
    for i, item in enumerate(raw.get("sources", [])):
        where = f"[[sources]] #{i + 1}"
        if not isinstance(item, dict):
            raise fail(where, "must be a table")
        name, key = item.get("name"), item.get("write_key")
        if not isinstance(name, str) or not name:
            raise fail(f"{where} name", "required, a non-empty string")
        if not isinstance(key, str) or len(key) < 8:
            raise fail(f"{where} write_key", "required, a string of at least 8 characters")
        if key in seen:
            raise fail(f"{where} write_key", "used by another source")
        seen.add(key)
        sources.append(Source(name=name, write_key=key, historical=bool(item.get("import", False))))
    warehouse = raw.get("warehouse", {})
    url = warehouse.get("url", f"duckdb://{DATA_DIR}/warehouse.duckdb")
    if not isinstance(url, str):
        raise fail("[warehouse] url", "must be a string")
    limits = raw.get("collector", {})
    try:
        collector = CollectorLimits(
            **{k: int(v) for k, v in limits.items() if k in CollectorLimits.__dataclass_fields__}
        )
    except (TypeError, ValueError) as exc:
        raise fail("[collector]", f"limits must be whole numbers ({exc})") from exc
    timezone = project.get("timezone", "UTC")
    return WorkspaceConfig(
        name=project["name"],
        sources=tuple(sources),
        warehouse_url=url,
        timezone=str(timezone),
        collector=collector,
        raw=raw,
    )


TEMPLATE = """\
# nerve workspace configuration. Format: docs/workspace.md
[project]
name = "{name}"
timezone = "UTC"          # time zone of daily and weekly grains

# Each source sends events with its own write key (HTTP Basic user, or the body's writeKey).
[[sources]]
name = "web"
write_key = "{web_key}"

[[sources]]
name = "server"
write_key = "{server_key}"

# A source of backfills: judged by volume, schema and duplicate checks, not lateness.
[[sources]]
name = "import"
write_key = "{import_key}"
import = true

[warehouse]
url = "duckdb://.nerve/warehouse.duckdb"   # relative to this folder

[collector]
max_event_bytes = 32768       # one event, JSON
max_request_bytes = 512000    # one request body, after gzip
max_batch_events = 2500
"""


def init_workspace(root: Path | str, name: str | None = None) -> Workspace:
    """Create a workspace folder with nerve.toml, events/, metrics/ and a git-ignored .nerve/."""
    root = Path(root).resolve()
    if (root / CONFIG_FILE).exists():
        raise WorkspaceError(f"{root / CONFIG_FILE}: already exists; not overwriting it")
    root.mkdir(parents=True, exist_ok=True)
    (root / "events").mkdir(exist_ok=True)
    (root / "metrics").mkdir(exist_ok=True)
    (root / DATA_DIR).mkdir(exist_ok=True)
    (root / CONFIG_FILE).write_text(
        TEMPLATE.format(
            name=name or root.name,
            web_key=_new_key(),
            server_key=_new_key(),
            import_key=_new_key(),
        ),
        encoding="utf-8",
    )
    ignore = root / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    if f"{DATA_DIR}/" not in lines:
        ignore.write_text("\n".join([*lines, f"{DATA_DIR}/"]) + "\n", encoding="utf-8")
    return Workspace.load(root)


def _new_key() -> str:
    return secrets.token_urlsafe(18)
