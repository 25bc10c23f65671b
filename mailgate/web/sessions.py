"""Sign-in state in the database: browser sessions and one-time login links.

Only the SHA-256 of a token is stored, so a copy of the database signs nobody in.
Sessions expire after ``[web] session_hours``; a login link after a few minutes, and
it works once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import AgentSession as SessionRow
from mailgate.db.models import LoginToken

LOGIN_LINK_MINUTES = 15


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def start_session(session: AsyncSession, email: str, hours: float) -> str:
    """A new session for ``email``; returns the token for the cookie."""
    token, now = new_token(), datetime.now(UTC)
    await session.execute(
        delete(SessionRow).where(SessionRow.email == email, SessionRow.expires_at < now)
    )
    session.add(
        SessionRow(
            id=digest(token), email=email, created_at=now, expires_at=now + timedelta(hours=hours)
        )
    )
    return token


async def session_email(session: AsyncSession, token: str) -> str | None:
    """The address a live session token belongs to, or None."""
    return await session.scalar(
        select(SessionRow.email).where(
            SessionRow.id == digest(token), SessionRow.expires_at > datetime.now(UTC)
        )
    )


async def end_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(SessionRow).where(SessionRow.id == digest(token)))


async def issue_login_token(session: AsyncSession, email: str) -> str:
    token, now = new_token(), datetime.now(UTC)
    await session.execute(delete(LoginToken).where(LoginToken.expires_at < now))
    session.add(
        LoginToken(
            id=digest(token),
            email=email,
            created_at=now,
            expires_at=now + timedelta(minutes=LOGIN_LINK_MINUTES),
        )
    )
    return token


async def redeem_login_token(session: AsyncSession, token: str) -> str | None:
    """The address of an unused, unexpired link token, marking it used; else None.

    The UPDATE ... WHERE used_at IS NULL settles two clicks racing each other: only
    one of them changes the row.
    """
    now = datetime.now(UTC)
    email = await session.scalar(
        update(LoginToken)
        .where(
            LoginToken.id == digest(token),
            LoginToken.used_at.is_(None),
            LoginToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(LoginToken.email)
    )
    return email


async def login_token_usable(session: AsyncSession, token: str) -> bool:
    """Whether a link token could still sign in (shown before the click confirms)."""
    found = await session.scalar(
        select(LoginToken.id).where(
            LoginToken.id == digest(token),
            LoginToken.used_at.is_(None),
            LoginToken.expires_at > datetime.now(UTC),
        )
    )
    return found is not None
