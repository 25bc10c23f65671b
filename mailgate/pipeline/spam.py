"""Spam: ask rspamd for a verdict on customer mail, and read what it answers.

rspamd's normal worker answers ``POST /checkv2`` with the raw message as the body and
the envelope in headers (``From``, ``Rcpt``, ``IP``, ``Helo``, ``Queue-Id``). Its
``action`` decides: ``reject``, ``add header`` and ``rewrite subject`` mean spam, and
the mail is held back. ``greylist`` and ``soft reject`` ask a sending MTA to try again
later, which mail already stored cannot do; they count as not spam (the verdict is
stored all the same). A check that fails (rspamd down, slow, answering nonsense)
lets the mail go on unscored: it is logged and stored as ``failed``, never held back.

The checks of a batch run at once over one HTTP session, before the batch's
transaction: a slow rspamd delays a batch by ``[spam] timeout_seconds`` at most and
never holds a database connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import aiohttp

from mailgate.config import Spam
from mailgate.db.models import JournalEntry

log = logging.getLogger(__name__)

SPAM_ACTIONS = frozenset({"reject", "add header", "rewrite subject"})
KNOWN_ACTIONS = SPAM_ACTIONS | {"no action", "greylist", "soft reject"}
MAX_SYMBOLS = 10  # the highest-scoring symbols kept with a verdict
MAX_CONNECTIONS = 8  # to rspamd at once, per batch
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SpamVerdict:
    """What the spam check said about one message (stored with it)."""

    result: str  # "spam", "ham" or "failed" (not scored)
    source: str = "rspamd"
    action: str = ""
    score: float | None = None
    required_score: float | None = None
    symbols: tuple[str, ...] = ()  # "NAME(score)", highest score first
    reason: str = ""  # why the check failed

    @property
    def is_spam(self) -> bool:
        return self.result == "spam"

    def stored(self) -> dict:
        return {
            key: list(value) if key == "symbols" else value for key, value in asdict(self).items()
        }

    @property
    def summary(self) -> str:
        """One line for people: ``rspamd: reject, score 15.00 of 15.00 (GTUBE(0.00))``."""
        if self.result == "failed":
            return f"{self.source}: not checked ({self.reason})"
        score = f", score {self.score:.2f}" if self.score is not None else ""
        of = f" of {self.required_score:.2f}" if self.required_score is not None else ""
        symbols = f" ({', '.join(self.symbols)})" if self.symbols else ""
        return f"{self.source}: {self.action or self.result}{score}{of}{symbols}"


def stored_summary(stored: dict) -> str:
    """``SpamVerdict.summary`` of a verdict as stored with a message."""
    fields = {key: stored[key] for key in SpamVerdict.__dataclass_fields__ if key in stored}
    return SpamVerdict(**{**fields, "symbols": tuple(fields.get("symbols", ()))}).summary


def failed(reason: str) -> SpamVerdict:
    return SpamVerdict("failed", reason=reason[:300])


def verdict_of(answer: object) -> SpamVerdict:
    """rspamd's checkv2 JSON as a verdict; a failed one if it is not what rspamd says."""
    if not isinstance(answer, dict):
        return failed("the answer is not a JSON object")
    action = answer.get("action")
    if action not in KNOWN_ACTIONS:
        return failed(f"unknown action {str(action)[:40]!r}")
    return SpamVerdict(
        "spam" if action in SPAM_ACTIONS else "ham",
        action=action,
        score=_number(answer.get("score")),
        required_score=_number(answer.get("required_score")),
        symbols=_top_symbols(answer.get("symbols")),
    )


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _top_symbols(symbols: object) -> tuple[str, ...]:
    if not isinstance(symbols, dict):
        return ()
    scored = []
    for name, detail in symbols.items():
        score = _number(detail.get("score")) if isinstance(detail, dict) else None
        scored.append((score or 0.0, _CONTROL.sub("", str(name))[:64]))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return tuple(f"{name}({score:.2f})" for score, name in scored[:MAX_SYMBOLS])


def envelope_headers(entry: JournalEntry) -> list[tuple[str, str]]:
    """The envelope as rspamd's headers; what is unknown or unfit for a header is left out."""
    headers = [("Queue-Id", f"mailgate-{entry.id}")]
    sender = _header_value(entry.mail_from.strip("<>"))
    if sender:
        headers.append(("From", sender))
    headers += [("Rcpt", value) for rcpt in entry.recipients if (value := _header_value(rcpt))]
    ip = _peer_ip(entry.peer)
    if ip:
        headers.append(("IP", ip))
    helo = _header_value(entry.helo)
    if helo:
        headers.append(("Helo", helo))
    return headers


def _header_value(value: str) -> str:
    return "" if _CONTROL.search(value) else value.strip()[:512]


def _peer_ip(peer: str) -> str:
    """``"192.0.2.7:51234"`` -> ``"192.0.2.7"``; "" for a unix socket, a pipe or IMAP."""
    host = peer.rpartition(":")[0].strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return ""


async def check_entries(settings: Spam, entries: Sequence[JournalEntry]) -> list[SpamVerdict]:
    """A verdict for each entry, asked of rspamd all at once (``settings.rspamd_url``
    must be set). Never raises: a check that fails gives a failed verdict."""
    url = settings.rspamd_url.rstrip("/") + "/checkv2"
    timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        return list(await asyncio.gather(*(_check(http, url, entry) for entry in entries)))


async def _check(http: aiohttp.ClientSession, url: str, entry: JournalEntry) -> SpamVerdict:
    try:
        async with http.post(url, data=entry.raw, headers=envelope_headers(entry)) as response:
            if response.status != 200:
                verdict = failed(f"rspamd answered HTTP {response.status}")
            else:
                verdict = verdict_of(await response.json(content_type=None))
    except TimeoutError:
        verdict = failed("rspamd did not answer in time")
    except Exception as exc:  # whatever went wrong, the mail goes on unscored
        verdict = failed(f"{type(exc).__name__}: {exc}")
    if verdict.result == "failed":
        log.warning("entry %d: spam check failed, goes on unscored: %s", entry.id, verdict.reason)
    return verdict
