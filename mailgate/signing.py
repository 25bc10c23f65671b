"""Signed reply addresses and portal tokens, keyed by the server secret.

A reply address is ``local+<code>.<mac>@domain`` for a customer's thread and
``local+<code>.<mac>@domain`` with the MAC also binding an agent's address for that
agent. An agent's note address, ``local+<code>.note.<mac>@domain``, binds the agent
and the purpose: mail to it becomes an internal note, never a reply to the customer.
MTAs and mail clients sometimes change the case of a local part, so codes and MACs
are compared case-insensitively (base32 has one case).

A bounce (VERP) address is the envelope sender of one outgoing message:
``support+bounce-<outbox id>.<mac>@domain`` under the route's address, or
``bounce+<outbox id>.<mac>@<return_path_domain>`` when that is set. A DSN sent back
to it names the message that failed without our reading the bounce's guesswork.

Tokens that arrive in URLs and forms (portal, rating, CSRF) can be any text; they are
compared as UTF-8 bytes, so an odd character is a mismatch, never an exception.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from mailgate.addresses import BOUNCE_LOCAL, detail_of
from mailgate.numbers import whole_number

MAC_CHARS = 16
MAC_BYTES = MAC_CHARS * 5 // 8  # base32 spends 8 characters on 5 bytes
NOTE_MARK = ".note"


def _utf8(text: str) -> bytes:
    """Any text as bytes, lone surrogates included (a request may carry them)."""
    return text.encode("utf-8", "surrogatepass")


def same_text(given: str, expected: str) -> bool:
    """Constant-time equality of a secret sent by a client (any text) and ours.

    ``hmac.compare_digest`` refuses non-ASCII str; compared as bytes, text that is
    not ours is simply different."""
    return hmac.compare_digest(_utf8(given), _utf8(expected))


@dataclass(frozen=True)
class SignedReply:
    code: str
    agent: str | None  # the agent the address was made for; None for a customer
    note: bool = False  # an agent's note address: the mail is an internal note


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, *parts: str) -> str:
        message = _utf8("\0".join(parts))
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.b32encode(digest[:MAC_BYTES]).decode().lower()

    def sign(self, purpose: str, value: str) -> str:
        """A MAC binding ``value`` to ``purpose`` (session cookies, CSRF tokens...)."""
        return self._mac(purpose, value)

    def verify(self, purpose: str, value: str, mac: str) -> bool:
        return same_text(mac.lower(), self._mac(purpose, value))

    def reply_address(self, route_address: str, code: str, agent: str | None = None) -> str:
        """``support+<code>.<mac>@domain``: threads to ``code`` (as ``agent``, if given)."""
        local, _, domain = route_address.rpartition("@")
        mac = self._mac("reply", code.upper(), (agent or "").lower())
        return f"{local}+{code.lower()}.{mac}@{domain}"

    def note_address(self, route_address: str, code: str, agent: str) -> str:
        """``support+<code>.note.<mac>@domain``: an internal note on ``code`` by ``agent``."""
        local, _, domain = route_address.rpartition("@")
        mac = self._mac("note", code.upper(), agent.lower())
        return f"{local}+{code.lower()}{NOTE_MARK}.{mac}@{domain}"

    def read_reply_address(self, address: str, agents: Iterable[str]) -> SignedReply | None:
        """The code (and agent) a signed reply or note address was made for, or None if
        forged."""
        code, _, mac = detail_of(address).lower().rpartition(".")
        if not code or len(mac) != MAC_CHARS:
            return None
        note = code.endswith(NOTE_MARK)
        code = code.removesuffix(NOTE_MARK).upper()
        purpose = "note" if note else "reply"
        for agent in (*agents,) if note else (None, *agents):
            expected = self._mac(purpose, code, (agent or "").lower())
            if same_text(mac, expected):
                return SignedReply(code, agent, note)
        return None

    def bounce_address(self, sender: str, outbox_id: int, domain: str = "") -> str:
        """The envelope sender for outbox item ``outbox_id`` sent as ``sender``."""
        token = f"{outbox_id}.{self._mac('bounce', str(outbox_id))}"
        if domain:
            return f"{BOUNCE_LOCAL}+{token}@{domain.lower()}"
        local, _, sender_domain = sender.rpartition("@")
        return f"{local}+{BOUNCE_LOCAL}-{token}@{sender_domain}"

    def read_bounce_address(self, address: str) -> int | None:
        """The outbox id a bounce address was made for; None if it is not one or forged."""
        local = address.strip().strip("<>").rpartition("@")[0]
        base, _, detail = local.lower().partition("+")
        prefix = "" if base == BOUNCE_LOCAL else f"{BOUNCE_LOCAL}-"
        if not detail.startswith(prefix):
            return None
        outbox_id, _, mac = detail.removeprefix(prefix).partition(".")
        if whole_number(outbox_id) is None or len(mac) != MAC_CHARS:
            return None
        if not same_text(mac, self._mac("bounce", outbox_id)):
            return None
        return int(outbox_id)

    def portal_token(self, code: str) -> str:
        return self._mac("portal", code.upper())

    def check_portal_token(self, code: str, token: str) -> bool:
        return same_text(token.lower(), self.portal_token(code))

    def rating_token(self, code: str, score: str) -> str:
        """The key of a solved mail's rating link: one per ticket and score."""
        return self._mac("rating", code.upper(), score.lower())

    def check_rating_token(self, code: str, score: str, token: str) -> bool:
        return same_text(token.lower(), self.rating_token(code, score))
