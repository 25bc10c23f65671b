"""Client networks: what abuse limits count per, the /24 of an IPv4 address and the
/64 of an IPv6 one.

One household, office or cloud customer usually holds one such network, so a limit
per network keeps one party from using up everyone's share (SMTP sessions, sign-in
attempts) however many of its addresses it uses.
"""

from __future__ import annotations

import ipaddress

NETWORK_PREFIX = {4: 24, 6: 64}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_of(text: str) -> IPAddress | None:
    """``text`` as an IP address (an IPv4-mapped IPv6 one as IPv4, without a scope);
    None if it is not one (a unix socket's name, nothing)."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def network_of(address: IPAddress) -> str:
    """The client network of ``address``: ``"192.0.2.0/24"``, ``"2001:db8:1:2::/64"``."""
    return str(ipaddress.ip_network((address, NETWORK_PREFIX[address.version]), strict=False))
