"""Our aiosmtpd sessions find the same commands and hooks as aiosmtpd's own scan.

``HookNamesOnce`` answers ``dir()`` from a per-class cache of the names aiosmtpd looks
for; if aiosmtpd comes to look for other names, or to find them another way, these
tests fail before a command or hook silently goes missing.
"""

from __future__ import annotations

import asyncio

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from mailgate.config import Settings
from mailgate.intake.sessions import SessionRegistry
from mailgate.intake.smtp import IntakeHandler, LmtpSession, SmtpSession


class PlainHandler:
    """The same hooks as ours, on a class that answers dir() in full."""

    handle_MAIL = IntakeHandler.handle_MAIL
    handle_RCPT = IntakeHandler.handle_RCPT
    handle_DATA = IntakeHandler.handle_DATA


def found(session: SMTP) -> tuple:
    return (
        {name: method.__func__ for name, method in session._smtp_methods.items()},
        {
            name: (impl.method.__func__, impl.is_builtin)
            for name, impl in session._auth_methods.items()
        },
        {name: hook.__func__ for name, hook in session._handle_hooks.items()},
        session._ehlo_hook_ver,
    )


async def test_sessions_find_what_aiosmtpd_finds_by_its_own_scan():
    loop = asyncio.get_running_loop()
    registry = SessionRegistry(Settings().smtp)
    handler = IntakeHandler.__new__(IntakeHandler)  # the hooks are what counts
    for ours, theirs in ((SmtpSession, SMTP), (LmtpSession, LMTP)):
        session = ours(handler, registry=registry, hostname="mx.test", loop=loop)
        plain = theirs(PlainHandler(), hostname="mx.test", loop=loop)
        assert found(session) == found(plain)
        assert {"DATA", "EHLO", "MAIL", "RCPT", "QUIT"} <= set(session._smtp_methods)
        assert set(session._handle_hooks) == {"MAIL", "RCPT", "DATA"}


async def test_a_hook_added_to_a_subclass_is_found():
    class WithHelo(IntakeHandler):
        async def handle_HELO(self, server, session, envelope, hostname):
            return "250 hello"

    loop = asyncio.get_running_loop()
    registry = SessionRegistry(Settings().smtp)
    session = SmtpSession(WithHelo.__new__(WithHelo), registry=registry, loop=loop)
    assert set(session._handle_hooks) == {"MAIL", "RCPT", "DATA", "HELO"}
