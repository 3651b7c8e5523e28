"""Tables a person reads at 80 columns (a terminal's default, and what a pipe gets): no
number wrapped or cut, names kept whole, every value still there."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from nerve.cli import _check
from nerve.cli._common import Format, emit
from nerve.quality import CheckResult, Status

METRICS = ["lessons_completed", "learners", "xp_total", "avg_lesson_seconds",
           "median_lesson_seconds", "revenue", "subscriptions", "xp_per_lesson",
           "lesson_completion"]


def printed(rows: list[dict[str, object]], width: int = 80) -> str:
    out = Console(width=width, record=True, file=io.StringIO())
    emit(rows, Format.table, title="weekly", out=out)
    return out.export_text()


def weekly_rows() -> list[dict[str, object]]:
    """Nine metrics by week, as `nerve metrics query` hands them to the table."""
    return [{"week": f"2026-11-{day:02d}", "lessons_completed": f"{1774 + day:,}",
             "learners": f"{392 + day:,}", "xp_total": f"{32680 + day:,}",
             "avg_lesson_seconds": f"{273.826 + day}", "median_lesson_seconds": "243.65",
             "revenue": f"{1247.75 + day:,.2f} USD", "subscriptions": str(day),
             "xp_per_lesson": "18.4216", "lesson_completion": f"{90 + day / 10:.1f}%"}
            for day in (2, 9, 16, 23)]


def test_a_wide_table_keeps_every_value_whole_beside_its_row_label() -> None:
    rows = weekly_rows()
    text = printed(rows)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    for row in rows:
        for name in METRICS:
            # the value, whole, on a line of its own week (the label repeated in each
            # part of the table), not wrapped into "1,24" and "9.75 USD"
            assert any(str(row[name]) in line and str(row["week"]) in line
                       for line in lines), (name, row[name], text)
    for name in METRICS:  # each header is there, wrapped at its underscores only
        for part in name.split("_")[:-1]:
            assert f"{part}_" in text, (name, text)


def test_a_table_that_fits_is_one_table_as_before() -> None:
    rows = [{"week": "2026-11-02", "orders": "1,774", "revenue": "1,247.75 USD"}]
    text = printed(rows)
    assert text.count("week ") == 1  # one header (the title is "weekly")
    assert "continued" not in text
    assert "1,247.75 USD" in text


def test_check_results_keep_the_check_and_event_names_whole_at_80_columns(
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = Console(width=80, record=True, file=io.StringIO())
    monkeypatch.setattr(_check, "console", out)
    result = CheckResult(
        check="natural_key_duplicates", status=Status.fail, event="subscription_purchase",
        dimensions={"source": "web"},
        message="11 of 511 subscription_purchase events (2.2%) in the last 24 h repeat "
                "another event's natural key under a different message id (expected at "
                "most 0.1%): the same action is tracked twice.")
    _check._print_table([result], show_passed=False)
    text = out.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    for name in ("natural_key_duplicates", "subscription_purchase", "source=web"):
        assert name in text, (name, text)
