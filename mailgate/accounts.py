"""Agents' web passwords, hashed with argon2; who is an agent is up to the config.

The ``agent_accounts`` table only holds credentials. An address that is no longer
among the config's ``[[agents]]`` cannot sign in, whatever its row says. Every
password set goes through ``check_password`` first.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import AgentAccount

MIN_PASSWORD_LENGTH = 10
# A hash to verify against when the address has no password, so a wrong address
# takes as long to refuse as a wrong password (no timing oracle for addresses).
_DUMMY_PASSWORD = "mailgate-no-such-account"


class PasswordError(ValueError):
    """A password that cannot be used; the message says why, to the one choosing it."""


@functools.cache
def common_passwords() -> frozenset[str]:
    """The passwords guessed first (``common_passwords.txt``), in lower case."""
    text = resources.files("mailgate").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def check_password(password: str, email: str) -> None:
    """Raise PasswordError if ``password`` is too easy to guess for ``email``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    folded, address = password.strip().casefold(), email.strip().casefold()
    if not folded:
        raise PasswordError("a password cannot be only spaces")
    if len(set(folded)) == 1:
        raise PasswordError("a password cannot be one character repeated")
    if folded in {address, address.rpartition("@")[0]}:
        raise PasswordError("a password cannot be the agent's address or the part before the @")
    if folded in common_passwords():
        raise PasswordError(
            "that password is on the list of the most common ones, which are guessed first; "
            "choose another"
        )


class Passwords:
    """Hashes and checks passwords; argon2 parameters are the library's defaults."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher()

    @functools.cached_property
    def _dummy(self) -> str:
        return self._hasher.hash(_DUMMY_PASSWORD)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def matches(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False


async def set_password(
    session: AsyncSession, passwords: Passwords, email: str, password: str | None
) -> None:
    """Store (or, with ``None``, clear) the password of ``email``; PasswordError if
    ``check_password`` refuses it."""
    if password is not None:
        check_password(password, email)
    hashed = passwords.hash(password) if password is not None else None
    account = await session.get(AgentAccount, email.lower())
    now = datetime.now(UTC)
    if account is None:
        session.add(AgentAccount(email=email.lower(), password_hash=hashed, updated_at=now))
    else:
        account.password_hash, account.updated_at = hashed, now


async def password_matches(
    session: AsyncSession, passwords: Passwords, email: str, password: str
) -> bool:
    """Whether ``password`` is the one of ``email`` (argon2 runs off the event loop)."""
    account = await session.get(AgentAccount, email.lower())
    stored = account.password_hash if account else None
    return await asyncio.to_thread(passwords.matches, stored, password)


async def has_password(session: AsyncSession, email: str) -> bool:
    account = await session.get(AgentAccount, email.lower())
    return account is not None and account.password_hash is not None
