"""Agents' signatures: which one a reply of theirs gets, and when it needs none.

An agent's own setting (their profile page, the ``agent_profiles`` table) wins over
``[[agents]] signature`` in the config. A reply written in a mail client often
carries the agent's signature already; then it is not added a second time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import AgentProfile
from mailgate.runtime import RuntimeConfig


def configured_signature(runtime: RuntimeConfig, agent: str) -> str:
    """``[[agents]] signature`` of ``agent`` ("" when none is set)."""
    for entry in runtime.settings.agents:
        if entry.email.lower() == agent.lower():
            return entry.signature
    return ""


async def own_signature(session: AsyncSession, agent: str) -> str | None:
    """The signature ``agent`` set on their profile page; None if they set none."""
    return await session.scalar(
        select(AgentProfile.signature).where(AgentProfile.email == agent.lower())
    )


async def signature_of(session: AsyncSession, runtime: RuntimeConfig, agent: str) -> str:
    """The signature ``agent``'s replies get: their own, else the configured one."""
    own = await own_signature(session, agent)
    return own if own is not None else configured_signature(runtime, agent)


async def set_signature(session: AsyncSession, agent: str, signature: str | None) -> None:
    """Store ``agent``'s own signature; None goes back to the configured one."""
    email = agent.lower()
    profile = await session.get(AgentProfile, email)
    if profile is None:
        profile = AgentProfile(email=email)
        session.add(profile)
    profile.signature = signature
    profile.updated_at = datetime.now(UTC)


def signature_to_add(text: str, signature: str) -> str:
    """``signature`` (its line ends made plain, blank edges trimmed) to put under
    ``text``; "" when there is none, or ``text`` already ends with it (spacing aside)."""
    lines = [line.rstrip() for line in signature.replace("\r\n", "\n").split("\n")]
    wanted = _words(lines)
    if not wanted or _words(text.split("\n"))[-len(wanted) :] == wanted:
        return ""
    return "\n".join(lines).strip("\n")


def _words(lines: list[str]) -> list[str]:
    """The non-blank lines, each with its runs of white space made one space."""
    return [" ".join(line.split()) for line in lines if line.strip()]
