"""Our own addresses: which route a recipient belongs to.

Recipients match case-insensitively, and ``support+anything@domain`` belongs to the
route of ``support@domain`` (signed reply and bounce addresses live there). A route
address ``*@domain`` catches every other local part of that domain. With ``[outbound]
return_path_domain`` set, ``bounce+anything@`` that domain is ours too (the bounce
addresses of outgoing mail; their signature is checked by the pipeline).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mailgate.config import Route

BOUNCE_LOCAL = "bounce"  # the local part of bounce addresses (signing.py)
NULL_SENDER_ALIAS = "mailer-daemon"
# A local part that may stay bare: atext and dots (RFC 5322), any non-ASCII (RFC 6531).
# Lenient on dots ("john..doe" is seen in the wild), so nothing gets quoted needlessly.
_BARE_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\x80-\U0010ffff]+")
_QUOTED_LOCAL = re.compile(r'"((?:[^"\\]|\\.)*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")
_NOT_IN_ADDRESS = re.compile(r'[\x00-\x20\x7f<>()"\\,;]')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def mailbox(address: str) -> str:
    """``address`` as we store and send it, or "" if it is not a mailbox.

    The local part is quoted when, and only when, it has to be (RFC 5321 4.1.2):
    ``"System Administrator"@example.com`` keeps its quotes, ``"john"@example.com``
    is ``john@example.com``. An address without ``@`` (``MAILER-DAEMON`` in a From
    header) is kept if it is one plain word.
    """
    local, at, domain = address.rpartition("@")
    if not at:
        return address if address and not _NOT_IN_ADDRESS.search(address) else ""
    quoted = _QUOTED_LOCAL.fullmatch(local)
    if quoted:
        local = _QUOTED_PAIR.sub(r"\1", quoted.group(1))
    elif _NOT_IN_ADDRESS.search(local):
        return ""
    if not local or not domain or _NOT_IN_ADDRESS.search(domain) or _CONTROL.search(local):
        return ""
    return f"{quote_local(local)}@{domain}"


def envelope_sender(path: str) -> str | None:
    """A reverse-path (``MAIL FROM``, ``Return-Path``, ``--sender``; angle brackets
    optional) as we store it: "" for the null sender, which is also what an
    unqualified ``MAILER-DAEMON`` means (MTAs still pass bounces along so, and
    Postfix's pipe writes a null sender so); None if it is no address at all."""
    path = path.strip()
    if path.startswith("<") and path.endswith(">"):
        path = path[1:-1].strip()
    if not path or path.lower() == NULL_SENDER_ALIAS:
        return ""
    sender = mailbox(path)
    return sender if "@" in sender else None


def quote_local(local: str) -> str:
    """A local part as RFC 5321 writes it: bare if it can be, else a quoted string."""
    if _BARE_LOCAL.fullmatch(local):
        return local
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


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
