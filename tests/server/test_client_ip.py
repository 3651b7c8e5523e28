"""The client's address behind a trusted proxy (``[collector] trusted_proxy_header``)."""

from __future__ import annotations

import pytest

from nerve._proxies import proxy_networks
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


# ------------------------------------------------ [collector] trusted_proxies: whose header


def through(peer: str, *lines: str, proxies: list[str] | None) -> str | None:
    """The client's address for a request from ``peer`` with these lines of the header."""
    scope = {"client": (peer, 40000), "headers": [
        (b"x-forwarded-for", line.encode("latin-1")) for line in lines]}
    return client_ip(scope, "X-Forwarded-For",
                     proxy_networks(proxies) if proxies is not None else None)


def test_a_peer_outside_the_trusted_proxies_cannot_choose_its_address() -> None:
    """With the header trusted, any client reaching nerve past its proxy chose the IP
    recorded for it: there was no way to say which peers the proxies are."""
    proxies = ["10.0.0.0/8", "2001:db8:ff::/48"]
    assert through("203.0.113.50", "198.51.100.9", proxies=proxies) == "203.0.113.50"
    assert through("10.1.2.3", "198.51.100.9", proxies=proxies) == "198.51.100.9"
    assert through("2001:db8:ff::3", "198.51.100.9", proxies=proxies) == "198.51.100.9"
    # a dual-stack socket's peer, an IPv4 address mapped into IPv6
    assert through("::ffff:10.1.2.3", "198.51.100.9", proxies=proxies) == "198.51.100.9"
    # without the setting, every peer is believed, as before
    assert through("203.0.113.50", "198.51.100.9", proxies=None) == "198.51.100.9"


def test_the_trusted_proxies_at_the_end_of_the_header_are_passed_over() -> None:
    """A CDN in front of a load balancer: the balancer appends the CDN's address."""
    proxies = ["10.0.0.0/8", "192.0.2.0/24"]
    assert through("10.0.0.2", "6.6.6.6, 198.51.100.9, 192.0.2.14",
                   proxies=proxies) == "198.51.100.9"
    assert through("10.0.0.2", "198.51.100.9, 192.0.2.14:443", proxies=proxies) == "198.51.100.9"
    # every item a proxy's: the first (a proxy's own request)
    assert through("10.0.0.2", "10.0.0.7, 192.0.2.14", proxies=proxies) == "10.0.0.7"
    # an item that is no address still gives none, not the one before it
    assert through("10.0.0.2", "198.51.100.9, unknown", proxies=proxies) is None


@pytest.mark.parametrize("value", [[], ["10.0.0.0/33"], ["proxy.internal"], "10.0.0.0/8", [10]])
def test_trusted_proxies_that_are_no_networks_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="network"):
        proxy_networks(value)
