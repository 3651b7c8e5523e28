"""The public surface of the collector and server packages, pinned."""

from __future__ import annotations

import nerve.collector
import nerve.server
import nerve.server.api


def test_collector_exports() -> None:
    assert sorted(nerve.collector.__all__) == sorted([
        "ENDPOINTS", "Collected", "Collector", "ParsedBody", "RequestError", "Validator",
        "decompress", "map_messages", "parse_body", "parse_timestamp",
        "rows_to_record_batch", "write_key_from_header",
    ])
    for name in nerve.collector.__all__:
        assert hasattr(nerve.collector, name)


def test_server_exports() -> None:
    assert sorted(nerve.server.__all__) == sorted([
        "SERVER_FILE", "EventLog", "Loader", "NerveState", "Warehouse", "create_app",
        "pipeline_health", "read_server_file", "serve",
    ])
    assert "sql" in nerve.server.api.API_MODULES
    for name in nerve.server.__all__:
        assert hasattr(nerve.server, name)
