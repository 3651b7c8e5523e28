"""An experiment's readout on the reader's view refuses a metric that reads a masked
value, instead of reading zero for every variant.

A telehealth product keeps its patients' diagnoses (``pii: sensitive``, allowed, kept)
and counts ``depressed`` bookings with a metric filter on the diagnosis. A reader's view
masks the diagnosis, so the filter matched nothing: the readout of an experiment whose
primary metric was ``depressed`` gave a reader a mean of 0.0 in every variant (and no
lift) where the admin's showed ~0.9, with no word that anything was off. Metric queries,
explain and the funnels refused such a filter already; experiments now do too, over
HTTP (``/v1/experiments/analyze`` and ``/plan``), for the agents' ``experiment_results``
and for ``nerve ask``'s experiment readouts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tests.conftest import Server, collect_and_load

from nerve.errors import QueryError
from nerve.mcp import call
from nerve.workspace import Workspace

BOOKED = """\
name: appointment_booked
description: A patient books an appointment with a clinician.
owner: care
version: 1.0.0
properties:
  diagnosis: {type: string, pii: sensitive, handling: keep, description: The suspected diagnosis.}
  age: {type: integer, pii: personal, handling: keep, description: The patient's age in years.}
  clinic: {type: string, pii: none, description: The clinic booked.}
"""
VIEWED = """\
name: experiment_viewed
description: A patient is shown a variant of an experiment.
owner: care
version: 1.0.0
properties:
  experiment_id: {type: string, required: true, pii: none, description: The experiment's key.}
  variant_id: {type: string, required: true, pii: none, description: The variant's key.}
"""
METRICS = """\
metrics:
  bookings:
    measure: {agg: count, event: appointment_booked}
  depressed:
    measure: {agg: count, event: appointment_booked, filter: "diagnosis = 'depression'"}
  depressed_share:
    type: ratio
    numerator: depressed
    denominator: bookings
dimensions:
  diag: properties.diagnosis
  clinic: properties.clinic
"""
EXPERIMENT = """\
key: triage
hypothesis: A new triage flow helps patients book.
variants: [control, new]
primary: {primary}
secondary: [bookings]
start: 2026-01-01
"""
READER = "ana-" + "r" * 28
READERS = ('[privacy]\nallow_sensitive = ["appointment_booked.diagnosis"]\n\n'
           '[[readers]]\nname = "ana"\ntoken_env = "NERVE_TEST_TOKEN_ANA"\n')
REFUSED = (r"metric depressed \"diagnosis = 'depression'\": diagnosis "
           r"\(properties.diagnosis\) is personal data, masked in this view")


def _clinic(make_workspace: Callable[..., Workspace], primary: str = "depressed"
            ) -> Workspace:
    ws = make_workspace({"appointment_booked.yaml": BOOKED,
                         "experiment_viewed.yaml": VIEWED}, extra_toml=READERS)
    (ws.root / "metrics" / "clinic.yaml").write_text(METRICS, encoding="utf-8")
    (ws.root / "experiments").mkdir(exist_ok=True)
    (ws.root / "experiments" / "triage.yaml").write_text(
        EXPERIMENT.format(primary=primary), encoding="utf-8")
    messages: list[dict[str, Any]] = []
    for i in range(40):
        user = f"pat-{i}"
        messages.append({"type": "track", "event": "experiment_viewed", "userId": user,
                         "messageId": f"x-{i}", "properties": {
                             "experiment_id": "triage",
                             "variant_id": ["control", "new"][i % 2]}})
        messages.extend({"type": "track", "event": "appointment_booked", "userId": user,
                         "messageId": f"b-{i}-{k}", "properties": {
                             "diagnosis": "depression" if (i + k) % 3 else "eczema",
                             "age": 30 + i, "clinic": f"c{i % 2}"}} for k in range(2))
    collect_and_load(ws, messages)
    return Workspace.load(ws.root)


def _means(readout: dict[str, Any], metric: str) -> list[float]:
    return [r["mean"] for r in readout["rows"] if r["metric"] == metric]


def test_the_agents_experiment_readout_refuses_a_metric_on_a_masked_value(
        make_workspace: Callable[..., Workspace]) -> None:
    ws = _clinic(make_workspace)
    admin = call(ws, "experiment_results", {"key": "triage"}, masked=False)
    assert min(_means(admin, "depressed")) > 0.5  # what the reader's view read as 0.0
    with pytest.raises(QueryError, match=REFUSED):
        call(ws, "experiment_results", {"key": "triage"})

    # a ratio names the metric whose filter reads the value
    ratio = _clinic(make_workspace, "depressed_share")
    with pytest.raises(QueryError, match=REFUSED):
        call(ratio, "experiment_results", {"key": "triage"})

    # an experiment on values the mask keeps right is answered, with the admin's figures
    plain = _clinic(make_workspace, "bookings")
    assert call(plain, "experiment_results", {"key": "triage"})["rows"] == \
        call(plain, "experiment_results", {"key": "triage"}, masked=False)["rows"]


def test_a_readers_experiment_readout_and_plan_refuse_it_over_http(
        make_workspace: Callable[..., Workspace], serve: Callable[..., Server],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NERVE_TEST_TOKEN_ANA", READER)
    ws = _clinic(make_workspace)
    server = serve(ws)
    admin_token = json.loads((ws.root / ".nerve" / "server.json").read_text())["admin_token"]

    def post(path: str, body: dict[str, Any], token: str = READER) -> httpx.Response:
        return httpx.post(server.url + path, json=body, timeout=120,
                          headers={"Authorization": f"Bearer {token}"})

    admin = post("/v1/experiments/analyze", {"key": "triage"}, admin_token)
    assert admin.status_code == 200, admin.text
    assert min(_means(admin.json(), "depressed")) > 0.5
    for path in ("/v1/experiments/analyze", "/v1/experiments/plan"):
        refused = post(path, {"key": "triage"})
        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["code"] == "query"
        assert "diagnosis (properties.diagnosis) is personal data" in refused.json()["message"]

    # a breakdown the view removes is refused (its groups would be one empty group);
    # one the view hashes is answered, with the admin's figures
    (ws.root / "experiments" / "triage.yaml").write_text(
        EXPERIMENT.format(primary="bookings"), encoding="utf-8")
    assert post("/v1/experiments/analyze", {"key": "triage"}).status_code == 200
    by_age = post("/v1/experiments/analyze", {"key": "triage", "by": "properties.age"})
    assert by_age.status_code == 400, by_age.text
    assert "by 'properties.age'" in by_age.json()["message"]
    by_diag = post("/v1/experiments/analyze", {"key": "triage", "by": "diag"})
    assert by_diag.status_code == 200, by_diag.text
    as_stored = post("/v1/experiments/analyze", {"key": "triage", "by": "diag"}, admin_token)
    assert sorted(r["mean"] for r in by_diag.json()["breakdown"]) == \
        sorted(r["mean"] for r in as_stored.json()["breakdown"])


def test_a_readers_readout_counts_the_quarantined_exposures_as_the_admins_does(
        make_workspace: Callable[..., Workspace]) -> None:
    """An uncataloged ``Experiment Viewed`` waits in the quarantine, where the reader's
    view masks every value of it, ``experiment_id`` included: the reader's readout
    counted none of them, and left out the warning that the readout misses them."""
    ws = _clinic(make_workspace, "bookings")
    collect_and_load(ws, [{"type": "track", "event": "Experiment Viewed",
                           "userId": f"late-{i}", "messageId": f"ev-{i}",
                           "properties": {"experiment_id": "triage", "variant_id": "new"}}
                          for i in range(3)])
    admin = call(ws, "experiment_results", {"key": "triage"}, masked=False)
    assert admin["quarantined_exposures"] == {"Experiment Viewed": 3}
    reader = call(ws, "experiment_results", {"key": "triage"})
    assert reader["quarantined_exposures"] == admin["quarantined_exposures"]
    assert reader["warnings"] == admin["warnings"]
    assert any("3 exposures of triage are in the quarantine" in w for w in reader["warnings"])
