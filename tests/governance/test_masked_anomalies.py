"""Anomaly detection and forecasts on the reader's view refuse a metric that reads a
masked value, and a breakdown the view removes, instead of judging nothing.

On the reader's view of a product that keeps its patients' diagnoses, ``depressed``
(bookings with ``diagnosis = 'depression'``) read as zero: ``POST /v1/anomalies`` judged
no series where the admin's judged one, a forecast said ``no data in the history
window`` (the agents' ``forecast_metric`` likewise), and anomalies ``by`` a kept age
said no event carries it. Metric queries and explanations refused these already.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tests.conftest import Server, collect_and_load
from tests.governance.test_masked_experiments import READER, _clinic

from nerve.errors import QueryError
from nerve.mcp import call
from nerve.workspace import Workspace


def _history(make_workspace: Callable[..., Workspace]) -> Workspace:
    """The clinic, with three weeks of depression bookings to learn from."""
    ws = _clinic(make_workspace)
    now = datetime.now(UTC)
    collect_and_load(ws, [
        {"type": "track", "event": "appointment_booked", "userId": f"old-{day}-{k}",
         "messageId": f"h-{day}-{k}", "timestamp": (now - timedelta(days=day)).isoformat(),
         "properties": {"diagnosis": "depression", "age": 40, "clinic": "c1"}}
        for day in range(1, 22) for k in range(5 + day % 3)])
    return ws


PERSONAL = "diagnosis (properties.diagnosis) is personal data, masked in this view"


def test_the_agents_forecast_refuses_a_metric_on_a_masked_value(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = _history(make_workspace)
    args = {"metric": "depressed", "horizon": "3d"}
    assert call(ws, "forecast_metric", args, masked=False)["metric"] == "depressed"
    with pytest.raises(QueryError, match=PERSONAL.replace("(", r"\(").replace(")", r"\)")):
        call(ws, "forecast_metric", args)
    plain = {"metric": "bookings", "horizon": "3d"}
    assert call(ws, "forecast_metric", plain)["forecast"] == \
        call(ws, "forecast_metric", plain, masked=False)["forecast"]


def test_a_readers_anomalies_and_forecast_refuse_masked_values_over_http(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Server],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NERVE_TEST_TOKEN_ANA", READER)
    ws = _history(make_workspace)
    server = serve(ws)
    admin_token = json.loads((ws.root / ".nerve" / "server.json").read_text())["admin_token"]

    def post(path: str, body: dict[str, Any], token: str = READER) -> httpx.Response:
        return httpx.post(server.url + path, json=body, timeout=120,
                          headers={"Authorization": f"Bearer {token}"})

    detect = {"target": "depressed", "evaluate": "7d", "min_history": "1d"}
    admin = post("/v1/anomalies", detect, admin_token)
    assert admin.status_code == 200, admin.text
    assert admin.json()["series_judged"] == 1  # the reader's view judged none
    for path, body in (("/v1/anomalies", detect),
                       ("/v1/anomalies/forecast", {"metric": "depressed", "horizon": "3d"})):
        refused = post(path, body)
        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["code"] == "query"
        assert PERSONAL in refused.json()["message"], refused.text
    by_age = post("/v1/anomalies", {"target": "appointment_booked", "by": ["properties.age"],
                                    "evaluate": "7d", "min_history": "1d"})
    assert by_age.status_code == 400, by_age.text
    assert "by 'properties.age': properties.age is personal data" in by_age.json()["message"]
    # what the mask keeps right is answered, with the admin's figures
    plain = {"target": "bookings", "evaluate": "7d", "min_history": "1d"}
    assert post("/v1/anomalies", plain).json()["series_judged"] == \
        post("/v1/anomalies", plain, admin_token).json()["series_judged"]
