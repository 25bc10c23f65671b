"""``mailgate deliver``: the pipe transport of an MTA.

Exit codes follow sysexits(3), which Postfix and Exim understand: 0 stored;
67 (EX_NOUSER) for an unknown recipient and 65 (EX_DATAERR) for an empty message or
one over the size limit, so the MTA bounces; 75 (EX_TEMPFAIL) when the message could
not be stored, so the MTA keeps it queued and tries again.

The envelope sender: ``--sender`` as the MTA gives it (``''``, or Postfix's default
``MAILER-DAEMON``, is the null sender of a bounce). Without ``--sender`` (fetchmail,
procmail, maildrop, ``.forward``) it is the topmost ``Return-Path`` header that the
delivering MTA wrote, and unknown without one: such mail is treated by its From,
like mail fetched by IMAP, never as a bounce for want of a sender.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mailgate.addresses import RouteTable, envelope_sender
from mailgate.intake.imap_wire import return_path
from mailgate.pipeline.journal import Arrival, Journal, JournalUnavailable
from mailgate.pipeline.parse import is_empty

log = logging.getLogger(__name__)

EX_OK = 0
EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75


def refusal(
    routes: RouteTable, recipients: Sequence[str], raw: bytes, max_bytes: int
) -> int | None:
    """The exit code for a message we must not take, or None if it is acceptable."""
    unknown = [address for address in recipients if not routes.is_ours(address)]
    if unknown:
        log.error("5.1.1 <%s>: no such mailbox here", ">, <".join(unknown))
        return EX_NOUSER
    if len(raw) > max_bytes:
        log.error("5.3.4 message of %d bytes is over the limit of %d bytes", len(raw), max_bytes)
        return EX_DATAERR
    if is_empty(raw):
        log.error("5.6.0 message is empty")
        return EX_DATAERR
    return None


def arrival(
    sender: str | None, recipients: Sequence[str], raw: bytes, trusted: bool = False
) -> Arrival:
    """The journal's record of a piped message; ``sender`` None: no --sender given;
    ``trusted``: "deliver" is one of ``[auth] trusted_paths``."""
    if sender is None:  # the sender from Return-Path, read again by the pipeline
        return Arrival("mda", _stored(return_path(raw)), tuple(recipients), raw, trusted=trusted)
    return Arrival("pipe", _stored(sender), tuple(recipients), raw, trusted=trusted)


def _stored(path: str) -> str:
    """A reverse-path as the journal keeps it; kept as given if it is no address."""
    sender = envelope_sender(path)
    return path.strip() if sender is None else sender


async def store(
    journal: Journal,
    sender: str | None,
    recipients: Sequence[str],
    raw: bytes,
    trusted: bool = False,
) -> int:
    """Journal one piped message; the exit code for the MTA."""
    try:
        entry_id = await journal.store(arrival(sender, recipients, raw, trusted))
    except JournalUnavailable as exc:
        log.error("4.3.0 could not store the message, try again later: %s", exc)
        return EX_TEMPFAIL
    log.debug("stored as journal entry %d", entry_id)
    return EX_OK
