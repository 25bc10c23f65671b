"""The spam verdict an MTA in front of us already wrote into the header.

A filter run by the MTA (rspamd as a milter, SpamAssassin, Amavis) marks spam with
``X-Spam-Flag: YES``, ``X-Spam-Status: Yes, score=…``, ``X-Spam: Yes``,
``X-Spamd-Result: default: True [15.00 / 15.00]; …`` or ``X-Rspamd-Action: reject``;
an ``Authentication-Results`` header of a trusted authserv-id may say ``dmarc=fail``.
Anybody can write such headers, so they count only for mail that came by a trusted
path (a listener only the MTA reaches), and DMARC only from the topmost
``Authentication-Results`` headers while their authserv-id is trusted (the MTA adds
its own above what the sender wrote). Only a "spam" answer is taken: a header saying
"not spam" proves nothing, so such mail is still asked of rspamd. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from mailgate.message import ParsedMessage
from mailgate.pipeline.agents import trusted_block
from mailgate.pipeline.spam import SPAM_ACTIONS, SpamVerdict

_YES = re.compile(r"\s*(yes|true)\b", re.IGNORECASE)
_SPAMD_RESULT = re.compile(r"\s*[\w-]+\s*:\s*(true|false)\s*\[\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)", re.I)
_SCORE = re.compile(r"\b(?:score|hits)=(-?[\d.]+)(?:.*?\brequired=(-?[\d.]+))?", re.IGNORECASE)


def header_verdict(
    message: ParsedMessage, trusted_path: bool, authserv_ids: Collection[str]
) -> SpamVerdict | None:
    """A spam verdict from the MTA's headers; None when they say nothing of spam, or
    when the mail did not come by a trusted path."""
    if not trusted_path:
        return None
    return _filter_verdict(message) or _dmarc_fail(message, authserv_ids)


def _filter_verdict(message: ParsedMessage) -> SpamVerdict | None:
    for value in message.headers.get("x-spamd-result", ()):
        found = _SPAMD_RESULT.match(value)
        if found and found.group(1).lower() == "true":
            score, required = float(found.group(2)), float(found.group(3))
            return SpamVerdict("spam", "X-Spamd-Result", "spam", score, required)
    for value in message.headers.get("x-rspamd-action", ()):
        if value.strip().lower() in SPAM_ACTIONS:
            return SpamVerdict("spam", "X-Rspamd-Action", value.strip().lower())
    for name in ("X-Spam-Flag", "X-Spam-Status", "X-Spam"):
        for value in message.headers.get(name.lower(), ()):
            if _YES.match(value):
                score, required = _scores(value)
                return SpamVerdict("spam", name, "spam", score, required)
    return None


def _scores(value: str) -> tuple[float | None, float | None]:
    found = _SCORE.search(value)
    if not found:
        return None, None
    required = float(found.group(2)) if found.group(2) else None
    return float(found.group(1)), required


def _dmarc_fail(message: ParsedMessage, authserv_ids: Collection[str]) -> SpamVerdict | None:
    values = message.headers.get("authentication-results", ())
    for header in trusted_block(values, authserv_ids):
        for result in header.results:
            if result.method.lower() == "dmarc" and result.result.lower() == "fail":
                return SpamVerdict(
                    "spam", f"Authentication-Results ({header.authserv_id})", "dmarc=fail"
                )
    return None
