"""Which ways in are trusted to carry the MTA's ``Authentication-Results``.

Anybody who can hand mail to a listener can write any header, ``Authentication-Results:
mx.example.com; dkim=pass`` included. Such headers are only worth reading on a path
fed by the MTA that wrote them and reachable by nobody else: ``[auth] trusted_paths``
names those paths (a listener address, ``deliver``, ``imap:NAME``). Intake records on
each journal entry whether it came by one; the pipeline reads the headers only then.
"""

from __future__ import annotations

import grp

from mailgate.config import ConfigError, Settings, parse_listen


def is_trusted(settings: Settings, path: str) -> bool:
    """Did the admin declare ``path`` (as ``[auth] trusted_paths`` names it) trusted?"""
    return path in settings.auth.trusted_paths


def socket_gid(group: str) -> int | None:
    """The id of ``[smtp] socket_group`` (None: leave the daemon's own group)."""
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"smtp.socket_group: there is no group named {group!r}") from None


def trust_warnings(settings: Settings) -> list[str]:
    """What an admin should know about the trust set up (check-config, daemon start)."""
    auth = settings.auth
    if auth.trusted_authserv_ids and not auth.trusted_paths:
        return [
            "auth.trusted_authserv_ids is set but auth.trusted_paths is empty: "
            "Authentication-Results headers are never read, so agents' mail counts as "
            "theirs only when sent to their signed reply address. List the listener only "
            'your MTA reaches, e.g. trusted_paths = ["unix:/run/mailgate/lmtp"].'
        ]
    if auth.trusted_paths and not auth.trusted_authserv_ids:
        return ["auth.trusted_paths has no effect while auth.trusted_authserv_ids is empty."]
    reachable = (_reachable(settings, path) for path in auth.trusted_paths)
    return [warning for warning in reachable if warning]


def _reachable(settings: Settings, path: str) -> str:
    """Why others than the MTA may reach the trusted listener ``path`` ("" if not)."""
    smtp = settings.smtp
    if path not in (*smtp.listen, *smtp.lmtp_listen):
        return ""
    where = parse_listen(path)
    if not isinstance(where, str):
        return (
            f"auth.trusted_paths: {path} is a TCP listener: every local user (and every "
            "host that reaches the address) can connect and write Authentication-Results "
            "headers that are believed. Prefer a unix socket with smtp.socket_group."
        )
    if int(smtp.socket_mode, 8) & 0o002:
        return (
            f"auth.trusted_paths: {path} is a socket anyone on this machine may connect to "
            f'(smtp.socket_mode = {smtp.socket_mode!r}): set socket_mode = "0660" and '
            "socket_group to the MTA's group."
        )
    return ""
