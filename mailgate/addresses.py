"""Our own addresses: which route a recipient belongs to.

Recipients match case-insensitively, and ``support+anything@domain`` belongs to the
route of ``support@domain`` (signed reply and bounce addresses live there). A route
address ``*@domain`` catches every other local part of that domain.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailgate.config import Route


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

    def __init__(self, routes: Iterable[Route]) -> None:
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
        return self.match(address) is not None
