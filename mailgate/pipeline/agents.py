"""Agent authentication: may this mail act as the agent its From: names?

Only when it came to a reply (or note) address signed for that agent, or when the
MTA in front of us vouches for it: an ``Authentication-Results`` header from one of
``[auth] trusted_authserv_ids`` saying DKIM passed for the agent's domain
(``header.d``/``header.i``) or SPF passed for it (``smtp.mailfrom``).

Those headers are read only for mail that came by a path the admin declared trusted
(``[auth] trusted_paths``: a listener only the MTA can reach, recorded on the journal
entry); on any other path whoever sent the mail wrote them. Even then, only the
contiguous headers at the very top count, while they come from a trusted id: our MTA
adds its own above everything the sender wrote, so a forged header under a foreign one
is never read. A forged header straight under ours looks like ours, so a failure
anywhere in that block (``spf=fail``, ``dkim=temperror``...) outweighs any pass in it.
(The MTA should also strip headers that claim its own authserv-id, as RFC 8601
section 5 asks.) Anything else that names an agent is an outside message, flagged.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import authres

from mailgate.message import ParsedMessage
from mailgate.signing import SignedReply

# Where each method names the domain it vouches for.
_DOMAIN_PROPERTIES = {"dkim": (("header", "d"), ("header", "i")), "spf": (("smtp", "mailfrom"),)}
# Results of these methods that say the sender's identity did not check out (or could
# not be checked: a DNS timeout is no proof either). "hardfail" is RFC 5451's SPF word.
_IDENTITY_METHODS = {"dkim", "spf", "dmarc"}
_NEGATIVE = {"fail", "softfail", "hardfail", "permerror", "temperror", "policy"}


@dataclass(frozen=True)
class AgentCheck:
    agent: str | None = None  # the authenticated agent's address (lower case)
    how: str = ""  # how it authenticated, for the audit event
    flag: str | None = None  # why mail naming an agent was not trusted
    note: bool = False  # it came to the agent's note address


NOT_AN_AGENT = AgentCheck()


def check_agent(
    message: ParsedMessage,
    signed: Sequence[SignedReply],
    agents: Collection[str],
    trusted_ids: Iterable[str],
) -> AgentCheck:
    sender = message.sender.email.lower() if message.sender else ""
    for_sender = [s for s in signed if s.agent and s.agent == sender]
    if sender in agents and for_sender:
        note = any(s.note for s in for_sender)
        return AgentCheck(
            sender, "signed note address" if note else "signed reply address", None, note
        )
    if sender in agents:
        passed = trusted_pass(
            message.headers.get("authentication-results", ()), sender, trusted_ids
        )
        if passed:
            return AgentCheck(sender, passed)
        return AgentCheck(
            flag=f"From: names agent {sender}, but the mail is not authenticated "
            "(no signed agent address, no trusted DKIM/SPF pass): not treated as the agent"
        )
    named = next((s.agent for s in signed if s.agent), None)
    if named:
        return AgentCheck(
            flag=f"sent to the signed address of agent {named} by "
            f"{sender or 'an unknown sender'}: not treated as the agent"
        )
    return NOT_AN_AGENT


def trusted_pass(values: Sequence[str], sender: str, trusted_ids: Iterable[str]) -> str | None:
    """Which topmost trusted header says DKIM or SPF passed for ``sender``'s domain;
    None if none does, or if any header of that block reports a failure."""
    domain = sender.rpartition("@")[2]
    block = trusted_block(values, trusted_ids)
    results = [(header, result) for header in block for result in header.results]
    if any(_negative(result) for _, result in results):
        return None
    for header, result in results:
        if result.result.lower() == "pass" and domain in _domains(result):
            return f"{result.method}=pass for {domain} ({header.authserv_id})"
    return None


def trusted_block(values: Sequence[str], trusted_ids: Iterable[str]) -> list:
    """The parsed ``Authentication-Results`` at the top (first) while each is from one
    of ``trusted_ids``: our MTA adds its own above whatever the sender wrote."""
    trusted = {authserv_id.lower() for authserv_id in trusted_ids}
    block = []
    for value in values:
        header = _parse(value)
        if header is None or header.authserv_id.lower() not in trusted:
            break
        block.append(header)
    return block


def _negative(result) -> bool:
    return result.method.lower() in _IDENTITY_METHODS and result.result.lower() in _NEGATIVE


def _parse(value: str):
    try:
        return authres.AuthenticationResultsHeader.parse_value(value)
    except Exception:  # a header the library cannot read (or recurses on) vouches for nothing
        return None


def _domains(result) -> set[str]:
    wanted = _DOMAIN_PROPERTIES.get(result.method.lower(), ())
    return {
        str(prop.value).rpartition("@")[2].lower()
        for prop in result.properties
        if (prop.type.lower(), prop.name.lower()) in wanted
    }
