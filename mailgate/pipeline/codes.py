"""Ticket codes: ``PREFIX-YYYYMMDD-XXXX``, unique, never reused.

XXXX comes from an alphabet without look-alikes (no 0/O, 1/I/L, U/V), so a code read
aloud or typed from a printout still finds its ticket: 29**4 = 707,281 codes a day.
"""

from __future__ import annotations

import re
import secrets
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Ticket

ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
SUFFIX_LENGTH = 4
MAX_CODE_TRIES = 20


def new_code(prefix: str, day: date) -> str:
    suffix = "".join(secrets.choice(ALPHABET) for _ in range(SUFFIX_LENGTH))
    return f"{prefix}-{day:%Y%m%d}-{suffix}"


# Any prefix ``[tickets] code_prefix`` allows: a code keeps threading after the prefix
# changes, as it is looked up whole (an unknown code finds nothing).
_CODE = re.compile(
    rf"(?<![A-Z0-9])[A-Z][A-Z0-9]{{0,9}}-\d{{8}}-[{ALPHABET}]{{{SUFFIX_LENGTH}}}(?![A-Z0-9])",
    re.IGNORECASE,
)
_BRACKETED_CODE = re.compile(rf"\s*\[\s*(?:{_CODE.pattern})\s*\]\s*|\s*{_CODE.pattern}\s*", re.I)
MAX_CODES = 10  # looked up per subject


def codes_in(subject: str) -> list[str]:
    """The ticket codes (``[PREFIX-YYYYMMDD-XXXX]``, brackets optional, any case) in a
    subject, whatever their prefix."""
    return [match.upper() for match in _CODE.findall(subject)][:MAX_CODES]


def without_codes(subject: str) -> str:
    """``subject`` without the ticket codes in it: a follow-up ticket's own subject."""
    return " ".join(_BRACKETED_CODE.sub(" ", subject).split())


async def unused_code(session: AsyncSession, prefix: str, day: date) -> str:
    """A fresh code; the unique index settles a race between nodes (the entry retries)."""
    return (await unused_codes(session, prefix, day, 1))[0]


async def unused_codes(session: AsyncSession, prefix: str, day: date, count: int) -> list[str]:
    """``count`` distinct fresh codes dated ``day`` (the team's local day, see
    ``[tickets] timezone``), checked in one query a round."""
    found: list[str] = []
    for _ in range(MAX_CODE_TRIES):
        wanted = {new_code(prefix, day) for _ in range(count - len(found))} - set(found)
        taken = set(await session.scalars(select(Ticket.code).where(Ticket.code.in_(wanted))))
        found += list(wanted - taken)
        if len(found) >= count:
            return found[:count]
    raise RuntimeError(f"no unused ticket code for {prefix} on {day:%Y-%m-%d}")
