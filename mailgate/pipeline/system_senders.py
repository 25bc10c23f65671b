"""Addresses of mail systems, list robots and senders that take no replies.

Read from the local part only: ``MAILER-DAEMON`` comes unqualified in an envelope,
and a bounce's ``From`` names whatever host wrote it.

- A **mail system** (``MAILER-DAEMON``, ``postmaster``, Exchange's
  ``MicrosoftExchange<hex>``) writes only bounces and notices: decisive alone.
- A **list robot** (``users-owner``, ``owner-users``, ``users-bounces``,
  ``users-request``, ``LISTSERV``, ``majordomo``) also forwards what people send to a
  list's owners: a hint only.
- A **no-reply** sender (``noreply``, ``no-reply``, ``do-not-reply``...) is often a
  customer's own system (a shop, a monitoring tool) whose mail deserves a ticket; an
  acknowledgement to it would go nowhere or bounce, so it gets none, and for the
  classifier it is a hint only.
"""

from __future__ import annotations

import re

_MAIL_SYSTEMS = re.compile(
    r"(?P<name>mailer[-_.]?daemon|mail[-_.]?daemon|postmaster|"
    r"microsoftexchange[0-9a-f]{32}|mail[-_.]?delivery[-_.]?(subsystem|system))",
    re.IGNORECASE,
)
_LIST_ROBOTS = re.compile(
    r".+-(owner|bounces|request|admin)(\+.*)?|owner-.+|listserv|majordomo|mailman|sympa|"
    r"ecartis|lyris|listproc",
    re.IGNORECASE,
)
_NO_REPLY = re.compile(
    r"(.*[-_.])?(no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|noreply|unmonitored)"
    r"([-_.+].*)?",
    re.IGNORECASE,
)


def local_part(address: str) -> str:
    """``<MAILER-DAEMON@mx.example>`` -> ``MAILER-DAEMON``; an unqualified name as is."""
    address = address.strip().strip("<>").strip()
    return address.rpartition("@")[0] if "@" in address else address


def mail_system(address: str) -> str | None:
    """The mail system's name as shown in a reason (``MAILER-DAEMON``), or None."""
    local = local_part(address)
    if not _MAIL_SYSTEMS.fullmatch(local):
        return None
    lowered = local.lower()
    if lowered.startswith("microsoftexchange"):
        return "Exchange's system mailbox"
    return "MAILER-DAEMON" if "daemon" in lowered else lowered


def list_robot(address: str) -> bool:
    return bool(_LIST_ROBOTS.fullmatch(local_part(address)))


def takes_no_replies(address: str) -> bool:
    """A no-reply address: nothing sent there is read."""
    return bool(address) and bool(_NO_REPLY.fullmatch(local_part(address)))


def no_reply_reason(address: str, suppressed: bool) -> str | None:
    """Why ``address`` gets no acknowledgement at all, if it gets none: nothing sent to a
    no-reply address is read, and a suppressed one bounced hard."""
    if takes_no_replies(address):
        return f"{address} takes no replies"
    if suppressed:
        return f"{address} is suppressed after a hard bounce"
    return None
