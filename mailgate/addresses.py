"""Our own addresses: which route a recipient belongs to.

Recipients match case-insensitively, and ``support+anything@domain`` belongs to the
route of ``support@domain`` (signed reply and bounce addresses live there). A route
address ``*@domain`` catches every other local part of that domain. With ``[outbound]
return_path_domain`` set, ``bounce+anything@`` that domain is ours too (the bounce
addresses of outgoing mail; their signature is checked by the pipeline).
"""

from __future__ import annotations

from collections.abc import Iterable

from mailgate.config import Route

BOUNCE_LOCAL = "bounce"  # the local part of bounce addresses (signing.py)


def base_address(address: str) -> str:
    """Lower-case the address and drop a ``+detail`` sub-address."""
    local, sep, domain = address.strip().strip("<>").rpartition("@")
    if not sep or not local or not domain:
        return ""
    return f"{local.split('+', 1)[0]}@{domain}".lower()


def detail_of(address: str) -> str:
    """The ``detail`` of ``local+detail@domain``, or an empty string."""
    local = address.strip().strip("<>").rpartition("@")[0]
    return local.partition("+")[2]


class RouteTable:
    """Finds the route for a recipient address."""

    def __init__(self, routes: Iterable[Route], return_path_domain: str = "") -> None:
        self._bounces = f"{BOUNCE_LOCAL}@{return_path_domain}".lower() if return_path_domain else ""
        self._exact: dict[str, Route] = {}
        self._catch_all: dict[str, Route] = {}
        for route in routes:
            local, _, domain = route.address.lower().rpartition("@")
            if local == "*":
                self._catch_all.setdefault(domain, route)
            else:
                self._exact.setdefault(f"{local}@{domain}", route)

    def match(self, address: str) -> Route | None:
        base = base_address(address)
        if not base:
            return None
        return self._exact.get(base) or self._catch_all.get(base.rpartition("@")[2])

    def is_ours(self, address: str) -> bool:
        return self.match(address) is not None or self.is_bounce_address(address)

    def is_bounce_address(self, address: str) -> bool:
        """``bounce+detail@<return_path_domain>``: a return path of our outgoing mail."""
        return bool(self._bounces and detail_of(address)) and base_address(address) == self._bounces
