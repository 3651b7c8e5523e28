"""``nerve ask`` on an experiment: the p-value that decides "significant" is in the
answer, so "p = 0.025, not significant" (Holm across the metrics) cannot be read as a
contradiction."""

from __future__ import annotations

from typing import Any

import pytest

import nerve.agent._render_readouts
from nerve.agent import Context, ask, run_tool


def _corrected(readout: dict[str, Any]) -> dict[str, Any]:
    """The demo's readout with the p-values of a ride-hailing test the helper found
    (0.025, 0.0996 once Holm corrected it across four metrics): the small demo's own
    figures vary with the day it simulates, and are often all 1.0 before and after."""
    for row in readout["rows"]:
        if row.get("p_value") is not None:
            row["p_value"], row["p_value_adjusted"] = 0.025, 0.0996
    return readout


def test_the_corrected_p_value_is_said_where_it_decides(
        demo_ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    def tool(ctx: Context, name: str, args: dict[str, Any]) -> Any:
        result = run_tool(ctx, name, args)
        return _corrected(result) if name == "experiment_results" else result

    monkeypatch.setattr(nerve.agent._render_readouts, "run_tool", tool)
    answer = ask("how is the simple checkout experiment doing?", demo_ctx)
    assert answer.answered, answer.answer
    readout = _corrected(run_tool(demo_ctx, "experiment_results", {"key": "simple_checkout"}))
    rows = [r for r in readout["rows"] if r["lift"] is not None
            and r["role"] in ("primary", "guardrail")
            and r["p_value_adjusted"] != r["p_value"]]
    assert rows, readout["rows"]
    said = [n.value for n in answer.numbers if n.label == "adjusted p-value"]
    assert said == [r["p_value_adjusted"] for r in rows]
    for n in answer.numbers:
        if n.label == "adjusted p-value":
            assert f"{n.text} corrected for the experiment's several metrics" in \
                answer.answer


def test_a_tiny_p_value_reads_as_under_a_thousandth(
        demo_ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """p = 1.5e-05 read "p = 0.000", as if nothing at all could have been chance."""
    def tool(ctx: Context, name: str, args: dict[str, Any]) -> Any:
        result = run_tool(ctx, name, args)
        if name == "experiment_results":
            for row in result["rows"]:
                if row.get("p_value") is not None:
                    row["p_value"] = row["p_value_adjusted"] = 1.5e-05
        return result

    monkeypatch.setattr(nerve.agent._render_readouts, "run_tool", tool)
    answer = ask("how is the simple checkout experiment doing?", demo_ctx)
    assert answer.answered, answer.answer
    assert "p < 0.001" in answer.answer
    assert "0.000" not in answer.answer


def test_with_several_variants_the_correction_says_it_spans_them(
        demo_ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """Holm runs over every treatment variant's metrics together: an answer that said
    "corrected for the experiment's several metrics" hid the variants it also spans."""
    def tool(ctx: Context, name: str, args: dict[str, Any]) -> Any:
        result = run_tool(ctx, name, args)
        if name == "experiment_results":
            result = _corrected(result)
            result["units"] = {**result["units"], "two_step": 120}
        return result

    monkeypatch.setattr(nerve.agent._render_readouts, "run_tool", tool)
    answer = ask("how is the simple checkout experiment doing?", demo_ctx)
    assert answer.answered, answer.answer
    assert "corrected for the experiment's several variants and metrics" in answer.answer
