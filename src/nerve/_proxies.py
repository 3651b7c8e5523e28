"""``[collector] trusted_proxies``: the addresses whose forwarding headers are believed.

Without it, ``trusted_proxy_header`` is believed from every peer, so a client that
reaches nerve past its proxy chooses the IP recorded for it. With it, only a connection
from one of these networks is taken at its word, and the proxies' own addresses at the
end of the header are passed over to reach the client's (docs/privacy.md).
"""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = ["Networks", "proxy_networks", "within"]

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def proxy_networks(value: Any) -> Networks:
    """The networks of a ``trusted_proxies`` list; ValueError names what is not one.

    >>> proxy_networks(["10.0.0.0/8", "2001:db8::1"])
    (IPv4Network('10.0.0.0/8'), IPv6Network('2001:db8::1/128'))
    """
    if not isinstance(value, list) or not value:
        raise ValueError('expected a list of the proxies\' addresses or networks '
                         f'(["10.0.0.0/8", "127.0.0.1"]), got {value!r}')
    networks = []
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"expected addresses or networks as strings, got {item!r}")
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (\"10.0.0.0/8\", "
                             "\"2001:db8::/32\", \"127.0.0.1\")") from None
    return tuple(networks)


def within(address: str | None, networks: Networks) -> bool:
    """Whether an address (as a peer or a header gives it) is in one of the networks; an
    IPv4 address mapped into IPv6 (``::ffff:10.0.0.2``, a dual-stack socket's) as IPv4.

    >>> within("::ffff:10.0.0.2", proxy_networks(["10.0.0.0/8"])), within("x", ())
    (True, False)
    """
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)
