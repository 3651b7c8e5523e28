"""The client's address behind a trusted proxy (``[collector] trusted_proxy_header``)."""

from __future__ import annotations

import pytest

from nerve.server._ingest import client_ip

#: the connection: the proxy's own address
PEER = ("10.0.0.2", 40000)


def forwarded(*lines: str, header: str | None = "X-Forwarded-For") -> str | None:
    """The client's address for a request with these lines of X-Forwarded-For."""
    scope = {"client": PEER, "headers": [(b"host", b"nerve"), *(
        (b"x-forwarded-for", line.encode("latin-1")) for line in lines)]}
    return client_ip(scope, header)


@pytest.mark.parametrize(("value", "address"), [
    ("203.0.113.7", "203.0.113.7"),
    ("198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the last: the one the proxy appended
    # a port, as Azure's proxies write it: the address alone under every ip policy
    # (only `truncate` took it off; `hash` and `keep` stored "203.0.113.7:5678")
    ("203.0.113.7:5678", "203.0.113.7"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("2001:db8::1", "2001:db8::1"),
    # empty items are skipped (a trailing comma fell back to the proxy's own address)
    ("203.0.113.7, ", "203.0.113.7"),
    ("203.0.113.7,,", "203.0.113.7"),
    (" 203.0.113.7 ", "203.0.113.7"),
])
def test_the_last_forwarded_address_without_port_or_brackets(value: str, address: str) -> None:
    assert forwarded(value) == address


def test_a_last_item_that_is_no_address_gives_none_not_the_proxy_s() -> None:
    """"unknown" (nginx, Squid) was stored as the IP under `keep`, hashed under `hash`."""
    assert forwarded("unknown") is None
    assert forwarded("203.0.113.7, unknown") is None
    assert forwarded("203.0.113.7:http") is None


@pytest.mark.parametrize("value", ["", " , ", ","])
def test_a_header_with_no_items_is_as_if_absent(value: str) -> None:
    assert forwarded(value) == "10.0.0.2"


def test_the_header_counts_only_when_a_proxy_is_trusted() -> None:
    assert forwarded("203.0.113.7", header=None) == "10.0.0.2"


def test_a_header_in_several_lines_is_one_list_and_its_last_item_wins() -> None:
    """HAProxy adds a line of its own: the first line (the client's claim) was taken."""
    assert forwarded("6.6.6.6", "203.0.113.7") == "203.0.113.7"
    assert forwarded("6.6.6.6, 7.7.7.7", "203.0.113.7:443") == "203.0.113.7"
    assert forwarded() == "10.0.0.2"
