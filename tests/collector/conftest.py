"""A workspace and catalog shaped like the captured wire fixtures' traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerve.catalog import Catalog
from nerve.collector import Collector
from nerve.workspace import Workspace

#: requests captured from real Segment SDKs (a copy of the project's shared wire fixtures)
WIRE = Path(__file__).parent / "wire"

#: the captures' write keys, as two sources; a third is a historical import source
TOML = """\
[project]
name = "wire"

[[sources]]
name = "server"
write_key = "WRITEKEY123"

[[sources]]
name = "browser"
write_key = "BROWSERKEY"

[[sources]]
name = "backfill"
write_key = "IMPORTKEY99"
import = true
"""

ORDER_COMPLETED = """\
name: order_completed
description: A customer completes an order.
owner: commerce
purpose: analytics
version: 1
retention: 400d
properties:
  revenue: {type: number, required: true, minimum: 0, pii: none}
  currency: {type: string, pattern: "^[A-Z]{3}$", pii: none}
"""

ORDER_COMPLETED_V2 = """\
name: order_completed
description: A customer completes an order, with the order id.
owner: commerce
purpose: analytics
version: 2
retention: 400d
properties:
  order_id: {type: string, required: true, pii: none}
  revenue: {type: number, required: true, minimum: 0, pii: none}
  currency: {type: string, pattern: "^[A-Z]{3}$", pii: none}
"""

#: the name the captured SDK traffic uses (Segment's "Object Action" convention)
SEGMENT_ORDER_COMPLETED = """\
name: Order Completed
description: A customer completes an order (Segment's e-commerce spec name).
owner: commerce
purpose: analytics
version: 1
retention: 400d
properties:
  revenue: {type: number, required: true, minimum: 0, pii: none}
  currency: {type: string, pattern: "^[A-Z]{3}$", pii: none}
"""

IDENTIFY = """\
name: identify
type: identify
description: Who the user is.
owner: growth
purpose: analytics
version: 1
retention: 400d
properties:
  email: {type: string, pii: personal, handling: hash}
  plan: {type: string, enum: [free, pro], pii: none}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    (tmp_path / "nerve.toml").write_text(TOML)
    events = tmp_path / "events"
    (events / "versions").mkdir(parents=True)
    (events / "order_completed.yaml").write_text(ORDER_COMPLETED_V2)
    # the captures' other track events ("Anon Event", "Retry Me"...) are not cataloged:
    # they show the unknown_event path
    (events / "segment_order_completed.yaml").write_text(SEGMENT_ORDER_COMPLETED)
    (events / "versions" / "order_completed.v1.yaml").write_text(ORDER_COMPLETED)
    (events / "identify.yaml").write_text(IDENTIFY)
    # a fixed key, so that the golden envelopes' keyed hashes are reproducible
    (tmp_path / ".nerve").mkdir()
    (tmp_path / ".nerve" / "secret.key").write_text("golden-test-secret\n")
    return Workspace.load(tmp_path)


@pytest.fixture
def catalog(workspace: Workspace) -> Catalog:
    return Catalog.load(workspace.events_dir)


@pytest.fixture
def collector(workspace: Workspace, catalog: Catalog) -> Collector:
    return Collector(workspace, catalog)
