"""What every command shares: exit codes, the workspace option, output formats, errors."""

from __future__ import annotations

import contextlib
import csv
import enum
import functools
import io
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from nerve.errors import NerveError, TransientError, UserError
from nerve.quality._result import fmt_duration
from nerve.workspace import Workspace

__all__ = [
    "ExitCode",
    "Format",
    "FormatOption",
    "console",
    "emit",
    "err_console",
    "handle_errors",
    "iso_time",
    "load_workspace",
    "print_table",
    "readable",
    "shown",
    "working",
]


class ExitCode(enum.IntEnum):
    """Exit codes of every nerve command (docs/cli.md)."""

    OK = 0
    #: the command ran and found problems: lint errors, failing checks, a breaking diff
    FAILED = 1
    #: wrong arguments or options (Typer's own usage errors use this too)
    USAGE = 2
    #: the command ran and found only warnings
    WARN = 3
    #: the input is wrong: workspace, catalog, query; the message says where
    INVALID = 4
    #: a server or lock is busy; trying again later may work
    UNAVAILABLE = 5
    #: a bug in nerve
    INTERNAL = 70


class Format(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[
    Format,
    typer.Option("--format", "-f", help="table for people; json (only JSON on stdout) or csv "
                                         "for programs.", case_sensitive=False),
]

class _Console(Console):
    """A Rich console that wraps text at the width of a terminal only: piped to a file
    or a CI log with no ``$COLUMNS`` (``table_width``), Rich assumed 80 columns and
    folded a hint in the middle of a command (`` `nerve`` / ``serve` ``); there a line
    of text is printed whole, as ``soft_wrap=True`` prints it. Renderables (tables) are
    laid out by ``print_table``."""

    def print(self, *objects: Any, **options: Any) -> None:
        if (options.get("soft_wrap") is None and objects
                and all(isinstance(o, str | Text) for o in objects)
                and table_width(self) == _UNBOUNDED):
            options["soft_wrap"] = True
        super().print(*objects, **options)


console: Console = _Console()
err_console: Console = _Console(stderr=True)


@contextlib.contextmanager
def working(what: str) -> Iterator[None]:
    """A spinner with the time elapsed on stderr while a command reads the warehouse,
    so that a question or a check that takes a minute on a month of events does not
    look hung. On a terminal only: pipes, CI logs and --format json/csv see nothing."""
    if not err_console.is_terminal:
        yield
        return
    from rich.progress import (  # noqa: PLC0415 - only when it shows
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        progress.add_task(what, total=None)
        yield


def load_workspace(ctx: typer.Context) -> Workspace:
    """The workspace named by the global --workspace option (or NERVE_WORKSPACE, or cwd)."""
    root = (ctx.find_root().obj or {}).get("workspace")
    return Workspace.load(root)


P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn nerve's errors into a message on stderr and the matching exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(ExitCode.INVALID) from exc
        except TransientError as exc:
            err_console.print(f"[yellow]unavailable:[/yellow] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(ExitCode.UNAVAILABLE) from exc
        except NerveError as exc:
            err_console.print(f"[red]internal error:[/red] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(ExitCode.INTERNAL) from exc
        except KeyboardInterrupt:
            # Click said `Aborted!` and exited 1; Typer 0.2x exits 130 without a word. Keep
            # one answer to Ctrl-C, the same as while the command line loads (nerve._entry).
            sys.stderr.write("\nAborted!\n")
            raise typer.Exit(ExitCode.FAILED) from None

    return wrapper


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError


def to_json(value: Any) -> bytes:
    return orjson.dumps(value, default=_jsonable,
                        option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def _rows(data: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of a pyarrow Table or a list of mappings."""
    if hasattr(data, "to_pylist") and hasattr(data, "column_names"):
        return list(data.column_names), data.to_pylist()
    rows = [dict(r) for r in data]
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return columns, rows


def emit(data: Sequence[Mapping[str, Any]] | Any, fmt: Format, *, title: str | None = None,
         out: Any = None) -> None:
    """Print tabular results: a Rich table, a JSON array of row objects, or CSV."""
    columns, rows = _rows(data)
    if fmt is Format.json:
        sys.stdout.buffer.write(to_json(rows) + b"\n")
        sys.stdout.flush()
        return
    if fmt is Format.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v, exact=True) for k, v in row.items()})
        sys.stdout.write(buffer.getvalue())
        return
    print_table(columns, [[_cell(row.get(c)) for c in columns] for row in rows], title,
                out or console)


#: a cell that reads as one number: a count, an amount with its currency, a share, a
#: duration ("1,247.75 USD", "+7.2%", "41 s", "2.3e-06"), right-aligned; or as one date
#: or time, left-aligned. Neither is ever wrapped.
_ONE = r"[+-]?[\d,]*\.?\d+(e[+-]?\d+)?(%| ?[A-Za-z]{1,3})?"
_NUMBER = re.compile(rf"{_ONE}( \.\. {_ONE})?")  # or an interval: "-1.3% .. +15.7%"
_DATE = re.compile(r"\d{4}-\d\d-\d\d([ T][\d:.]+([+-]\d\d:\d\d)?)?( \(partial\))?")


#: the width a table may take where nothing bounds it (see ``table_width``)
_UNBOUNDED = 1_000_000


def table_width(target: Console) -> int:
    """The width ``target``'s tables may take: the terminal's, or ``$COLUMNS`` when set,
    or the width the console was made with. With none of these (output piped to a file,
    ``grep`` or a CI log) Rich assumes 80 columns and folds every row of a wide table
    over several lines; there is no screen to fit, so a table is as wide as its content
    (``_UNBOUNDED``), one row a line."""
    if target.is_terminal or target._width is not None or os.environ.get("COLUMNS"):
        return target.width
    return _UNBOUNDED


def print_rich_table(table: Table, target: Console) -> None:
    """Print a Rich table at ``table_width``: where it is unbounded, at the table's own
    width (an ``expand`` table would fill a million columns)."""
    width = table_width(target)
    if width != _UNBOUNDED:
        target.print(table)
        return
    measured = Measurement.get(target, target.options.update_width(width), table)
    # print(width=) takes no more than the console's width: widen the console meanwhile
    target.width = measured.maximum
    try:
        target.print(table)
    finally:
        target._width = None


def print_table(columns: Sequence[str], cells: Sequence[Sequence[str]], title: str | None,
                target: Console, **options: Any) -> None:
    """Print rows of cells as Rich tables that a terminal of ``target``'s width can read.

    Numbers are never wrapped (a wrapped "1,24|7.75" reads as two numbers); other
    text folds. A table wider than the terminal even so (ten metrics in 80 columns) is
    printed as several tables, each repeating the leading label columns (the period,
    the breakdown, the step), as pandas prints a wide frame: no value is cut or lost.
    Without a terminal or ``$COLUMNS`` a table is as wide as its content
    (``table_width``).
    """
    numbers = [_every(cells, i, _NUMBER) for i in range(len(columns))]
    atoms = [numbers[i] or _every(cells, i, _DATE) for i in range(len(columns))]
    wide = sum(max([len(columns[i]), *(_width(r[i]) for r in cells)]) + 3
               for i in range(len(columns))) + 1
    room = table_width(target)
    if wide <= room:  # as wide as Rich would draw it, borders and padding included
        _print_one(_build(columns, cells, atoms, title, options, split=False, numbers=numbers,
                          width=room),
                   title, target)
        return
    # too wide: headers wrap at their underscores rather than anywhere in a word, text
    # folds, and if the numbers still do not fit, the columns go to several tables
    keys = _label_columns(columns, cells, atoms, target.width)
    groups = _groups(columns, cells, atoms, keys, target.width)

    for n, group in enumerate(groups):
        chosen = [*keys, *group] if len(groups) > 1 else list(range(len(columns)))
        heading = title if n == 0 else "(continued)"
        table = _build([columns[i] for i in chosen], [[r[i] for i in chosen] for r in cells],
                       [atoms[i] for i in chosen], heading, options, split=True,
                       numbers=[numbers[i] for i in chosen], width=target.width)
        if len(groups) > 1:
            # prose gets the width the packing gave it, or Rich widens it and cuts the
            # table's last column
            for column, i in zip(table.columns, chosen, strict=True):
                if not atoms[i] and _least(cells, i, False, target.width) is None:
                    column.max_width = _TEXT_WIDTH
        _print_one(table, heading, target)


def _every(cells: Sequence[Sequence[str]], i: int, pattern: re.Pattern[str]) -> bool:
    """Whether column ``i`` has values and every one matches ``pattern``."""
    values = [r[i] for r in cells if r[i]]
    return bool(values) and all(pattern.fullmatch(v) for v in values)


def _least(cells: Sequence[Sequence[str]], i: int, atom: bool, width: int) -> int | None:
    """The narrowest column ``i`` may be: a number's or a date's whole width; for names
    (a line of one word each: an event, a check, a dimension value) the longest, up to a
    third of the terminal; prose (a message) may fold anywhere."""
    lines = [line for r in cells for line in r[i].splitlines()]
    if atom:
        return max(len(r[i]) for r in cells)
    if lines and not any(" " in line for line in lines):
        return min(max(len(line) for line in lines), width // 3)
    return None


def _build(columns: Sequence[str], cells: Sequence[Sequence[str]], atoms: Sequence[bool],
           title: str | None, options: dict[str, Any], *, split: bool,
           numbers: Sequence[bool], width: int) -> Table:
    table = Table(title=title, **options)
    for i, (column, atom, number) in enumerate(zip(columns, atoms, numbers, strict=True)):
        header = escape(column.replace("_", "_\n") if split else column)
        # a narrow terminal (80 columns when piped) wraps a value rather than cutting it
        # to "…": a file:line, a step name or a rate must be read whole; a number is
        # never wrapped at all (a wrapped "1,24|7.75" reads as two numbers)
        table.add_column(header, overflow="fold", justify="right" if number else "left",
                         min_width=_least(cells, i, atom, width))
    for row in cells:
        table.add_row(*(escape(c) for c in row))
    return table


def _natural(column: str, cells: Sequence[Sequence[str]], i: int) -> int:
    """A column's width with its header split at underscores and no cell wrapped."""
    return max([*(len(part) + 1 for part in column.split("_")), *(_width(r[i]) for r in cells)])


def _width(text: str) -> int:
    """The width of a cell: its longest line."""
    return max((len(line) for line in text.splitlines()), default=0)


#: the width a column of prose (a message) gets when columns are packed into tables
_TEXT_WIDTH = 10


def _need(columns: Sequence[str], cells: Sequence[Sequence[str]], atoms: Sequence[bool],
          i: int, width: int) -> int:
    """Column ``i``'s width in a packed table, with its padding and border."""
    natural = _natural(columns[i], cells, i)
    least = _least(cells, i, atoms[i], width)
    return max(least or min(natural, _TEXT_WIDTH), min(natural, _TEXT_WIDTH)) + 3


def _label_columns(columns: Sequence[str], cells: Sequence[Sequence[str]],
                   atoms: Sequence[bool], width: int) -> list[int]:
    """The leading columns that say what a row is (the period, the breakdown, the step):
    the first, and the text ones after it while they take at most half the width."""
    keys = [0]
    used = _need(columns, cells, atoms, 0, width)
    for i in range(1, len(atoms)):
        used += _need(columns, cells, atoms, i, width)
        if atoms[i] or used > width // 2:
            break
        keys.append(i)
    return keys


def _groups(columns: Sequence[str], cells: Sequence[Sequence[str]], atoms: Sequence[bool],
            keys: list[int], width: int) -> list[list[int]]:
    """The other columns in order, in as few groups as fit beside the label columns."""
    rest = [i for i in range(len(columns)) if i not in keys]
    room = width - 1 - sum(_need(columns, cells, atoms, i, width) for i in keys)
    groups: list[list[int]] = [[]]
    used = 0
    for i in rest:
        need = _need(columns, cells, atoms, i, width)
        if groups[-1] and used + need > room:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += need
    return groups


def _print_one(table: Table, title: str | None, target: Console) -> None:
    if title and len(title) > target.measure(table).maximum:
        # Rich folds a title to its table's width: a narrow result's title (a metric over
        # a period) came out a few characters wide and many lines high
        table.title = None
        target.print(title, highlight=False, markup=False, soft_wrap=True)
    print_rich_table(table, target)


def _cell(value: Any, *, exact: bool = False) -> str:
    """A value as a table cell, or (``exact``) as a CSV field: every digit of a number."""
    if value is None:
        return ""
    if isinstance(value, bool):  # as JSON writes them, and DuckDB's CSV reads them
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=_jsonable).decode()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))  # a count summed as a float is still a count: 4, not 4.0
        return repr(value) if exact else _readable(value)
    return str(value)


def iso_time(text: str | None, option: str) -> datetime | None:
    """A time given on the command line in ISO 8601, with or without a zone (UTC then).

    Not typer's datetime type: its formats take no zone (``2026-11-30T07:05:49+00:00``,
    what ``date --iso-8601=seconds`` prints, was refused with some versions).

    >>> iso_time("2026-11-30T07:05:49.3+01:00", "--now").isoformat()
    '2026-11-30T07:05:49.300000+01:00'
    >>> iso_time("2026-11-30", "--now").isoformat()
    '2026-11-30T00:00:00+00:00'
    """
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"{option}: expected an ISO 8601 time such as 2026-11-30T08:00:00Z "
                        f"or 2026-11-30, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def readable(value: float) -> str:
    """A float for a person as ``_readable`` gives it, with thousands separators: a
    metric's sum of 30997.42 is ``30,997.42``, an average ``1,291.5``.

    >>> [readable(v) for v in (30997.42, 1291.49561827957, 1.3104167, 4.0)]
    ['30,997.42', '1,291.5', '1.31042', '4']
    """
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if not math.isfinite(value):
        return repr(value)
    return f"{float(_readable(value)):,}"


def shown(value: Any, form: str | None = None) -> str:
    """A value in a table as a person reads it, by its column's ``form``: ``percent``
    (0.4874 as 48.7%), ``change`` (a signed share), ``p`` (a p-value), ``seconds`` (a
    duration), ``currency USD``; other numbers get thousands separators. JSON and CSV
    keep the numbers themselves; this is for tables only.

    >>> [shown(246912.4, "currency USD"), shown(0.48741, "percent"), shown(0.3748, "change"),
    ...  shown(2.28e-06, "p"), shown(69.4, "seconds"), shown(754, "seconds"),
    ...  shown(210341), shown(141.9), shown(None), shown("web")]
    ... # doctest: +NORMALIZE_WHITESPACE
    ['246,912.40 USD', '48.7%', '+37.5%', '2.3e-06', '69 s', '13 min', '210,341', '141.9',
     '', 'web']
    """
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if form == "percent":
        return f"{value:.1%}"
    if form == "change":
        return f"{value:+.1%}"
    if form == "p":
        return f"{value:.2g}"
    if form == "seconds":
        return fmt_duration(value)
    if form is not None and form.startswith("currency"):
        return f"{value:,.2f} {form.removeprefix('currency').strip()}".strip()
    return f"{value:,}" if isinstance(value, int) else readable(value)


def _readable(value: float) -> str:
    """A float for a person: six significant digits, but never fewer than two decimals
    (a sum of money keeps its cents) and no exponent for ordinary magnitudes.

    >>> [_readable(v) for v in (1234567.891, 216154.19999999832, 3.14159265, 0.000123456)]
    ['1234567.89', '216154.2', '3.14159', '0.000123456']
    """
    if not math.isfinite(value) or value == 0:
        return repr(value)
    decimals = max(2, 5 - math.floor(math.log10(abs(value))))
    return repr(round(value, decimals))


def emit_json(value: Any) -> None:
    """Print any JSON value (for results that are not tables)."""
    sys.stdout.buffer.write(to_json(value) + b"\n")
    sys.stdout.flush()


def not_empty(values: Iterable[str]) -> list[str]:
    return [v for v in values if v]
