"""The embedded default's first run: how to sign in to the demo.

The demo captures its mail instead of sending it, so a login link asked for on the
sign-in page never reaches anybody. Instead, each start on the embedded default
writes a login link to the log for every agent that has no password yet: the link
expires in minutes and works once, so the log holds nothing that signs anybody in
later (as a printed password would, until it is changed).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate.accounts import has_password
from mailgate.config import Settings
from mailgate.db.session import sessions
from mailgate.web.sessions import LOGIN_LINK_MINUTES, issue_login_token

log = logging.getLogger(__name__)


def mailgate_command() -> str:
    """How to run ``mailgate`` from here: the script beside this Python (the venv's,
    relative to the current directory when inside it), else ``mailgate`` on PATH."""
    script = Path(sys.executable).parent / "mailgate"
    if not script.is_file():
        return "mailgate"
    relative = os.path.relpath(script)
    return relative if not relative.startswith("..") else str(script)


async def announce_sign_in(engine: AsyncEngine, settings: Settings) -> None:
    """Log a one-time login link for each agent without a password."""
    base = settings.web.base_url.rstrip("/")
    for agent in settings.agents:
        email = agent.email.lower()
        async with sessions(engine).begin() as session:
            if await has_password(session, email):
                continue
            token = await issue_login_token(session, email)
        log.info(
            "demo: sign in as %s with this link within %d minutes (it works once; restart "
            "for another), or give it a password: %s agent passwd %s",
            email,
            LOGIN_LINK_MINUTES,
            mailgate_command(),
            email,
            extra={"fields": {"link": f"{base}/login/link/{token}"}},
        )
