"""The collector: Segment HTTP Tracking API requests to validated envelopes, with no I/O.

The server (``nerve.server``) is a thin shell over ``Collector.collect``: it reads the
body, calls it, appends the envelopes to the event log and answers once they are durable.

>>> from nerve.collector import Collector
>>> Collector(workspace, catalog).collect(body, endpoint="batch")  # doctest: +SKIP
"""

from nerve.collector._body import ParsedBody, decompress, parse_body, write_key_from_header
from nerve.collector._collect import ENDPOINTS, Collected, Collector, rows_to_record_batch
from nerve.collector._errors import RequestError
from nerve.collector._map import map_messages, parse_timestamp
from nerve.collector._validate import Validator

__all__ = [
    "ENDPOINTS",
    "Collected",
    "Collector",
    "ParsedBody",
    "RequestError",
    "Validator",
    "decompress",
    "map_messages",
    "parse_body",
    "parse_timestamp",
    "rows_to_record_batch",
    "write_key_from_header",
]
