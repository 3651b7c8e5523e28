"""The workspace: a folder under version control holding nerve.toml, events/ and metrics/.

Runtime data (the event log, the DuckDB warehouse) lives in ``.nerve/`` inside it, which
``nerve init`` git-ignores. The file format is documented in docs/workspace.md.
"""

from __future__ import annotations

import difflib
import os
import re
import secrets
import tomllib
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nerve._durations import parse_retention, parse_seconds, parse_window
from nerve._proxies import proxy_networks
from nerve._urls import url_query_setting, webhook_url
from nerve.errors import WorkspaceError

__all__ = ["SETTINGS", "CollectorLimits", "Source", "Workspace", "WorkspaceConfig",
           "check_settings", "duckdb_file", "enclosing_workspace", "init_workspace"]

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
    """The size limits of ``[collector]``: whole numbers of at least 1."""

    max_event_bytes: int = 32 * 1024
    max_request_bytes: int = 500 * 1024
    max_batch_events: int = 2500


#: Every setting nerve reads from nerve.toml: section -> its keys. Anything else is refused
#: when the workspace loads: a typo (``[privacy] personnal``, ``[colector]``) would
#: otherwise leave the default in force without a word. The comment names the code that
#: reads each section; tests/test_workspace.py checks the keys against that code, so a
#: setting added there and not here (or the reverse) fails the tests.
SETTINGS: dict[str, frozenset[str]] = {
    # here
    "project": frozenset({"name", "timezone"}),
    # here
    "sources": frozenset({"name", "write_key", "import"}),
    # here (url), warehouse/_warehouse.py (threads)
    "warehouse": frozenset({"url", "threads"}),
    # here (CollectorLimits), log/_stream.py, server/_state.py, server/_ratelimit.py
    "collector": frozenset({*(f.name for f in fields(CollectorLimits)), "max_backlog_bytes",
                            "max_connections", "header_timeout_seconds",
                            "body_timeout_seconds", "commit_interval_ms",
                            "trusted_proxy_header", "trusted_proxies",
                            "rate_limit_per_second",
                            "rate_limit_burst"}),
    # pipeline/privacy.py, erasure/_erase.py
    "privacy": frozenset({"personal", "allow_sensitive", "ip", "user_id", "enforce_consent",
                          "guard_unknown", "enforce_retention", "uncataloged_retention",
                          "audit_retention", "url_query"}),
    # server/_readers.py
    "readers": frozenset({"name", "role", "personal", "token_env"}),
    # loader/_loader.py
    "loader": frozenset({"dedup_window", "dedup_index_rows"}),
    # log/_stream.py
    "log": frozenset({"url", "stream", "subject", "replicas", "ack_timeout_seconds",
                      "tls_ca", "tls_cert", "tls_key"}),
    # catalog/_lint.py (``rules`` is a table of rule names, which the linter checks);
    # server/_reload.py (``reload_seconds``)
    "catalog": frozenset({"naming", "min_description", "rules", "reload_seconds"}),
    # quality/_config.py
    "checks": frozenset({"every", "webhook", "alert_on"}),
    # agent/_llm.py
    "agent": frozenset({"llm_url", "llm_model", "llm_api_key_env", "max_rounds"}),
    # demo/_run.py: the header marks a workspace `nerve demo` made (and may reset)
    "demo": frozenset({"bundle"}),
}
#: the sections written as arrays of tables, ``[[sources]]``
ARRAY_SECTIONS = frozenset({"sources", "readers"})
#: ``[collector]`` sizes that must be whole numbers >= 1 (0 or less refuses every event)
_POSITIVE = frozenset(f.name for f in fields(CollectorLimits))

#: checks a setting's value; raises ValueError saying the accepted form
Check = Callable[[Any], object]


def _boolean(value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")


def _number(low: float, *, whole: bool = False, above: bool = False, note: str = "") -> Check:
    """A number (``whole``: an integer) of at least ``low`` (``above``: more than it)."""
    kind, bound = ("a whole number" if whole else "a number"), (">" if above else ">=")

    def check(value: Any) -> None:
        if (isinstance(value, bool) or not isinstance(value, int if whole else int | float)
                or value < low or (above and value == low)):
            raise ValueError(f"expected {kind} {bound} {low:g}{note}, got {value!r}")

    return check


def _names(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of 'event.property' names, got {value!r}")


def _statuses(value: Any) -> None:
    if not all(s in ("warn", "fail", "error")
               for s in (value if isinstance(value, list) else [value])):
        raise ValueError(f"expected a list of statuses among warn, fail, error, got {value!r}")


def _one_of(*allowed: str) -> Check:
    def check(value: Any) -> None:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")

    return check


def _naming(value: Any) -> None:
    """``[catalog] naming``: a convention nerve names (nerve.catalog's lint), or a regex."""
    if value in ("object_action", "snake_case"):
        return
    if isinstance(value, str) and re.fullmatch(r"[\w-]+", value):
        # a plain word: as a regex it accepts the one event named so, never a convention
        raise ValueError(f"expected object_action, snake_case or a regex, got {value!r}"
                         f"{_suggest(value, ('object_action', 'snake_case'), '{!r}')} "
                         "(as a regex, a plain word accepts only an event of that name)")
    try:
        re.compile(value)
    except (re.error, TypeError) as exc:
        raise ValueError(f"expected object_action, snake_case or a regex, got {value!r} "
                         f"({exc})") from exc


def _text(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a string, got {value!r}")


#: The form of the settings whose value is checked when the workspace loads, by the
#: parser that later reads it, rather than first by that code: the daily retention job
#: was the first to read ``uncataloged_retention = "2 weeks"``, and failed every day in a
#: log nobody reads while nothing expired; ``[checks] every`` crashed the server's start
#: with a traceback. (The other settings' values are checked by their readers when
#: ``nerve serve`` starts, before it binds.)
FORMS: dict[str, dict[str, Check]] = {
    # max_backlog_bytes 0 or less and max_connections 0 were taken, and every event was
    # answered 503 for as long as the server ran; a number for trusted_proxy_header was
    # read as the header's name
    "collector": {"header_timeout_seconds": _number(0), "body_timeout_seconds": _number(0),
                  "commit_interval_ms": _number(0),
                  "max_backlog_bytes": _number(1, whole=True),
                  "max_connections": _number(1, whole=True),
                  "rate_limit_per_second": _number(0, above=True),
                  "rate_limit_burst": _number(0, above=True),
                  "trusted_proxy_header": _text, "trusted_proxies": proxy_networks},
    "privacy": {"enforce_retention": _boolean, "enforce_consent": _boolean,
                "guard_unknown": _boolean, "uncataloged_retention": parse_retention,
                "audit_retention": parse_retention, "allow_sensitive": _names,
                "personal": _one_of("hash", "drop", "keep"),
                "ip": _one_of("truncate", "hash", "drop", "keep"),
                "user_id": _one_of("keep", "hash"), "url_query": url_query_setting},
    "loader": {"dedup_window": parse_window},
    "log": {"ack_timeout_seconds": _number(0, above=True)},
    "catalog": {"reload_seconds": _number(0, note=" (0: never reload)"), "naming": _naming,
                "min_description": _number(0, whole=True)},
    # a webhook without its scheme was taken, and every alert failed to send
    "checks": {"every": parse_seconds, "alert_on": _statuses, "webhook": webhook_url},
}


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

    def make_data_dir(self) -> Path:
        """``.nerve/``, created readable by this user only (mode 0700) when missing: it
        holds raw personal data (the log, the warehouse), which other local users must
        not reach whatever the mode of each file inside."""
        try:
            self.data_dir.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            return self.data_dir
        self.data_dir.chmod(0o700)  # mkdir's mode passes through the umask
        return self.data_dir

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
        self.make_data_dir()
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

    def line_of(self, section: str, key: str | None = None) -> int | None:
        """The line of ``key`` in ``[section]`` of nerve.toml (of the section's header when
        ``key`` is None); None when the file does not show it plainly. For problems found
        after loading, such as a setting naming what the catalog does not have."""
        try:
            text = (self.root / CONFIG_FILE).read_text(encoding="utf-8")
        except OSError:
            return None
        return _line(text.splitlines(), section, key, 0)

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

    @property
    def warehouse_file(self) -> Path | None:
        """The DuckDB database file of ``warehouse_url`` (None: in memory, or another
        engine), without opening it: for a look at its disk's room."""
        return duckdb_file(self.warehouse_url)

    @classmethod
    def load(cls, root: Path | str | None = None) -> Workspace:
        """Load the workspace at ``root``, else ``$NERVE_WORKSPACE``, else the current folder."""
        if root is None:
            root = os.environ.get("NERVE_WORKSPACE") or Path.cwd()
        root = Path(root).resolve()
        path = root / CONFIG_FILE
        if not path.is_file():
            outer = enclosing_workspace(root)
            advice = (f"it is inside the workspace {outer}: run the command there or pass "
                      f"--workspace {outer}" if outer is not None else
                      "create one with `nerve init DIR` or pass --workspace DIR")
            raise WorkspaceError(f"{path}: not a nerve workspace (no {CONFIG_FILE}); {advice}")
        text = path.read_text(encoding="utf-8")
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise WorkspaceError(f"{path}: {exc}") from exc
        problems = _settings_problems(raw, path, text)
        try:
            config = _parse_config(raw, path, text)
        except WorkspaceError as exc:
            problems += [line for line in str(exc).splitlines() if line not in problems]
        if problems:  # in the file's order; those without a line first
            at = re.compile(rf"{re.escape(str(path))}:(\d+): ")
            problems.sort(key=lambda p: int(m[1]) if (m := at.match(p)) else 0)
            raise WorkspaceError("\n".join(problems))
        return cls(root=root, config=config)


def check_settings(raw: dict[str, Any], path: Path | str, text: str = "") -> None:
    """Refuse sections and keys nerve does not read (``SETTINGS``), ``[collector]`` sizes
    below 1 and values not of their setting's form (``FORMS``), naming the file, its line
    when ``text`` shows it, the section and key, with the closest known name or the
    accepted form. Every mistake is named, one per line, so one edit fixes them all.

    >>> check_settings({"privacy": {"personnal": "drop"}}, "nerve.toml")
    Traceback (most recent call last):
    ...
    nerve.errors.WorkspaceError: nerve.toml: [privacy] personnal: unknown key; did you mean \
'personal'? (known: allow_sensitive, audit_retention, enforce_consent, enforce_retention, \
guard_unknown, ip, personal, uncataloged_retention, url_query, user_id)
    """
    problems = _settings_problems(raw, path, text)
    if problems:
        raise WorkspaceError("\n".join(problems))


def _settings_problems(raw: dict[str, Any], path: Path | str, text: str) -> list[str]:
    """``check_settings``'s findings, in the file's order of sections."""
    problems: list[str] = []
    for section, value in raw.items():
        if section not in SETTINGS:
            where = _at(path, text, section if isinstance(value, dict | list) else None,
                        None if isinstance(value, dict | list) else section)
            problems.append(f"{where}[{section}]: unknown section"
                            f"{_suggest(section, SETTINGS, '[{}]')} "
                            f"(known: {', '.join(sorted(SETTINGS))})")
            continue
        tables = value if section in ARRAY_SECTIONS and isinstance(value, list) else [value]
        for index, table in enumerate(tables):
            label = f"[[{section}]] #{index + 1}" if section in ARRAY_SECTIONS else f"[{section}]"
            if not isinstance(table, dict) or (section in ARRAY_SECTIONS
                                               and not isinstance(value, list)):
                shape = (f"[[{section}]] tables, one per entry" if section in ARRAY_SECTIONS
                         else "a table")
                problems.append(f"{_at(path, text, section, None)}{label}: expected {shape}")
                continue
            for key, setting in table.items():
                problem = _setting_problem(section, table, key, setting)
                if problem:
                    problems.append(f"{_at(path, text, section, key, index)}{label} {key}: "
                                    f"{problem}")
    return problems


def _setting_problem(section: str, table: dict[str, Any], key: str, setting: Any
                     ) -> str | None:
    """What is wrong with one key of a known section, or None."""
    if key not in SETTINGS[section]:
        return (f"unknown key{_suggest(key, SETTINGS[section], '{!r}')} "
                f"(known: {', '.join(sorted(SETTINGS[section]))})")
    if section == "collector" and key in _POSITIVE and (
            isinstance(setting, bool) or not isinstance(setting, int) or setting < 1):
        return f"expected a whole number >= 1, got {setting!r}"
    try:
        FORMS.get(section, {}).get(key, _any)(setting)
    except ValueError as exc:
        return str(exc)
    if (section == "collector" and key == "rate_limit_burst"
            and "rate_limit_per_second" not in table):  # it limited nothing
        return "needs rate_limit_per_second (without it no rate is limited)"
    if (section == "collector" and key == "trusted_proxies"
            and "trusted_proxy_header" not in table):  # no header to believe from them
        return ('needs trusted_proxy_header (the header those proxies set, '
                '"X-Forwarded-For"): without it no forwarding header is read')
    return None


def _any(value: Any) -> None:
    """The form of a setting ``FORMS`` leaves to its reader."""


def _suggest(name: str, known: Iterable[str], form: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {form.format(close[0])}?" if close else ""


def _at(path: Path | str, text: str, section: str | None, key: str | None,
        index: int = 0) -> str:
    """``path:line: `` of ``key`` in ``section`` (its ``index``-th table for [[arrays]]), or
    of the section's header when ``key`` is None; ``path: `` when the text does not show
    it plainly (tomllib keeps no lines; a dotted key or an inline table hides it)."""
    line = _line(text.splitlines(), section, key, index)
    return f"{path}:{line}: " if line else f"{path}: "


def _line(lines: list[str], section: str | None, key: str | None, index: int) -> int | None:
    start = 0
    if section is not None:
        header = re.compile(rf"\s*\[\[?\s*{re.escape(section)}\s*\]\]?\s*(#.*)?")
        headers = [i for i, line in enumerate(lines) if header.fullmatch(line)]
        if len(headers) <= index:
            return None
        if key is None:
            return headers[index] + 1
        start = headers[index] + 1
    assignment = re.compile(rf"\s*([\"']?){re.escape(key or '')}\1\s*=")
    for i in range(start, len(lines)):
        if lines[i].lstrip().startswith("["):
            break
        if assignment.match(lines[i]):
            return i + 1
    return None


def _parse_config(raw: dict[str, Any], path: Path, text: str = "") -> WorkspaceConfig:
    """The settings nerve reads from ``raw``; raises WorkspaceError naming every problem,
    one per line (a section of the wrong shape is ``check_settings``'s to name)."""
    problems: list[str] = []

    def fail(field_name: str, problem: str, section: str | None = None,
             key: str | None = None, index: int = 0) -> None:
        where = _at(path, text, section, key, index) if section else f"{path}: "
        problems.append(f"{where}{field_name}: {problem}")

    def table(section: str) -> dict[str, Any]:
        value = raw.get(section, {})
        return value if isinstance(value, dict) else {}

    project = table("project")
    if not isinstance(project.get("name"), str):
        fail("[project] name", "required, a string", "project",
             "name" if "name" in project else None)
    sources = []
    seen: dict[str, str] = {}
    names: dict[str, int] = {}
    listed = raw.get("sources", [])
    for i, item in enumerate(listed if isinstance(listed, list) else []):
        where = f"[[sources]] #{i + 1}"
        if not isinstance(item, dict):
            continue  # check_settings names it
        name, key = item.get("name"), item.get("write_key")
        if not isinstance(name, str) or not name:
            fail(f"{where} name", "required, a non-empty string", "sources",
                 "name" if "name" in item else None, i)
        elif name in names:  # the source column, metrics and rate limits tell sources by name
            fail(f"{where} name", f"{name!r} is already the name of [[sources]] "
                 f"#{names[name] + 1}: give each source a name of its own",
                 "sources", "name", i)
        else:
            names[name] = i
        if not isinstance(key, str) or len(key) < 8:
            fail(f"{where} write_key", "required, a string of at least 8 characters",
                 "sources", "write_key" if "write_key" in item else None, i)
        elif key in seen:
            fail(f"{where} write_key", f"used by another source ({seen[key]})",
                 "sources", "write_key", i)
        else:
            seen[key] = f"{name!r}, [[sources]] #{i + 1}"
        historical = item.get("import", False)
        if not isinstance(historical, bool):
            fail(f"{where} import", f"expected true or false, got {historical!r}",
                 "sources", "import", i)
        sources.append(Source(name=str(name), write_key=str(key), historical=historical is True))
    url = table("warehouse").get("url", f"duckdb://{DATA_DIR}/warehouse.duckdb")
    if not isinstance(url, str):
        fail("[warehouse] url", "must be a string", "warehouse", "url")
    limits = table("collector")  # check_settings names sizes that are not whole numbers >= 1
    collector = CollectorLimits(**{f.name: limits[f.name] for f in fields(CollectorLimits)
                                   if f.name in limits})
    timezone = project.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(str(timezone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        fail("[project] timezone", f"unknown time zone {timezone!r} (an IANA name "
             "such as Europe/Berlin or America/New_York)", "project", "timezone")
    if problems:
        raise WorkspaceError("\n".join(problems))
    return WorkspaceConfig(
        name=project["name"],
        sources=tuple(sources),
        warehouse_url=str(url),
        timezone=str(timezone),
        collector=collector,
        raw=raw,
    )


TEMPLATE = """\
# nerve workspace configuration. Format: docs/workspace.md
[project]
name = "{name}"
timezone = "UTC"          # time zone of daily, weekly and monthly grains

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


def enclosing_workspace(folder: Path | str) -> Path | None:
    """The workspace folder that holds ``folder`` (``folder`` itself excluded), if any:
    the nearest parent with a nerve.toml.

    >>> enclosing_workspace("/") is None
    True
    """
    folder = Path(folder).resolve()
    for parent in folder.parents:
        if (parent / CONFIG_FILE).is_file():
            return parent
    return None


def init_workspace(root: Path | str, name: str | None = None) -> Workspace:
    """Create a workspace folder with nerve.toml, events/, metrics/ and a git-ignored .nerve/."""
    root = Path(root).resolve()
    if (root / CONFIG_FILE).exists():
        raise WorkspaceError(f"{root / CONFIG_FILE}: already exists; not overwriting it")
    root.mkdir(parents=True, exist_ok=True)
    (root / "events").mkdir(exist_ok=True)
    (root / "metrics").mkdir(exist_ok=True)
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
    workspace = Workspace.load(root)
    workspace.make_data_dir()
    return workspace


def _new_key() -> str:
    return secrets.token_urlsafe(18)


def duckdb_file(url: str) -> Path | None:
    """The database file a ``duckdb://`` URL names (None for memory or other URLs)."""
    prefix = "duckdb://"
    if not url.startswith(prefix) or url[len(prefix):] in ("", ":memory:"):
        return None
    return Path(url[len(prefix):])
