"""``nerve ask`` on an experiment: the p-value that decides "significant" is in the
answer, so "p = 0.025, not significant" (Holm across the metrics) cannot be read as a
contradiction."""

from __future__ import annotations

from nerve.agent import Context, ask, run_tool


def test_the_corrected_p_value_is_said_where_it_decides(demo_ctx: Context) -> None:
    answer = ask("how is the simple checkout experiment doing?", demo_ctx)
    assert answer.answered, answer.answer
    readout = run_tool(demo_ctx, "experiment_results", {"key": "simple_checkout"})
    rows = [r for r in readout["rows"] if r["lift"] is not None
            and r["role"] in ("primary", "guardrail")
            and r["p_value_adjusted"] is not None
            and r["p_value_adjusted"] != r["p_value"]]
    assert rows, readout["rows"]  # Holm over four metrics moves every p-value but one
    said = [n.value for n in answer.numbers if n.label == "adjusted p-value"]
    assert said == [r["p_value_adjusted"] for r in rows]
    for n in answer.numbers:
        if n.label == "adjusted p-value":
            assert f"{n.text} corrected for the experiment's several metrics" in \
                answer.answer
