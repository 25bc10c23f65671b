"""What a batch of journal entries needs from the database, read once per batch.

The pipeline threads and applies a batch of entries in one transaction. Instead of a
dozen queries per entry, ``Known`` reads in a few queries what the whole batch will
ask -- stored Message-IDs, the tickets that references and subject codes name, their
participants, suppressed addresses, recent rate events -- and keeps that up to date
with what the batch itself writes, so the fifth mail of a batch sees the ticket the
first one opened. A question about something not read up front is answered by a
query, so answers are never stale, only sometimes slower. The rate keys it counts
stay held until the batch commits (one lock statement per batch), so a pipeline on
another node or in another process counts them after this batch's events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import parse_rate
from mailgate.db.bulk import add_row
from mailgate.db.models import Message, Participant, RateEvent, Suppression, ThreadRef, Ticket
from mailgate.outbox.ratelimit import Limit, ack_key, hold_keys, notify_key
from mailgate.pipeline.codes import codes_in, unused_codes
from mailgate.pipeline.inbound import Inbound
from mailgate.runtime import RuntimeConfig

IN_CHUNK = 500  # values per IN (...) list: well under every driver's parameter limit
MAX_MERGE_HOPS = 20


class Known:
    def __init__(self, session: AsyncSession, runtime: RuntimeConfig, batch_size: int) -> None:
        self._session = session
        self._runtime = runtime
        self._batch_size = batch_size
        self._stored: set[tuple[str, str]] = set()  # (Message-ID, content fingerprint)
        self._refs: dict[str, Ticket | None] = {}  # Message-ID -> its ticket (None: unknown)
        self._by_code: dict[str, Ticket | None] = {}
        self._by_id: dict[int, Ticket] = {}
        self._participants: dict[Ticket, set[str]] = {}
        self._suppressed: dict[str, bool] = {}  # lower-case address -> suppressed now
        self._counts: dict[tuple[str, int], int] = {}  # (rate key, seconds) -> recent events
        self._codes: list[str] = []
        # The routes' agents (whose rate keys are read up front), and how far back the
        # ack, per-agent and per-ticket notification limits look, in seconds.
        self._agents = {a.lower() for route in runtime.settings.routes for a in route.agents}
        t = runtime.settings.tickets
        rates = (t.ack_rate_limit, t.notify_rate_limit, t.notify_ticket_rate_limit)
        self._ack_window, self._agent_window, self._ticket_window = (
            parse_rate(rate)[1] for rate in rates
        )

    @classmethod
    async def load(
        cls, session: AsyncSession, runtime: RuntimeConfig, inbounds: Sequence[Inbound]
    ) -> Known:
        """Read what ``inbounds`` will ask about, in a handful of queries."""
        known = cls(session, runtime, len(inbounds))
        await known._load_stored(inbounds)
        await known._load_tickets(inbounds)
        await known._load_participants(list(known._by_id.values()))
        senders = {inbound.customer_email for inbound in inbounds}
        await known._load_suppressed(senders | known._agents)
        await known._hold_and_count(known._rate_windows(senders))
        return known

    # -- duplicates ---------------------------------------------------------------

    def is_stored(self, inbound: Inbound) -> bool:
        """The same Message-ID with the same content is already a message."""
        return (inbound.message.message_id, inbound.fingerprint) in self._stored

    def stored(self, inbound: Inbound) -> None:
        self._stored.add((inbound.message.message_id, inbound.fingerprint))

    async def _load_stored(self, inbounds: Sequence[Inbound]) -> None:
        ids = {inbound.message.message_id for inbound in inbounds}
        for chunk in _chunks(ids):
            query = select(Message.message_id, Message.content_sha256)
            self._stored.update(await self._rows(query.where(Message.message_id.in_(chunk))))

    # -- tickets ------------------------------------------------------------------

    async def ticket_by_reference(self, message_ids: Sequence[str]) -> Ticket | None:
        """The ticket of the first of ``message_ids`` we stored or sent (merges followed)."""
        await self._load_refs(message_ids)
        for message_id in message_ids:
            if self._refs.get(message_id) is not None:
                return await self._survivor(self._refs[message_id])
        return None

    async def ticket_by_code(self, code: str) -> Ticket | None:
        code = code.upper()
        if code not in self._by_code:
            found = await self._session.scalar(select(Ticket).where(Ticket.code == code))
            self._by_code[code] = self._remember(found) if found else None
        return await self._survivor(self._by_code[code])

    def referenced(self, message_id: str, ticket: Ticket) -> None:
        self._refs[message_id] = ticket

    def opened(self, ticket: Ticket) -> None:
        """A ticket the batch created: its customer is its only participant, and no
        agent has been notified about it yet."""
        self._by_code[ticket.code] = ticket
        self._participants[ticket] = {ticket.customer_email}
        keys = (notify_key(agent, ticket.code) for agent in self._agents)
        self._counts.update(((key, self._ticket_window), 0) for key in keys)

    async def new_code(self, prefix: str, day: date) -> str:
        """An unused ticket code dated ``day``; a batch's codes come from one query."""
        if not self._codes or self._codes[-1].split("-")[-2] != f"{day:%Y%m%d}":
            self._codes = await unused_codes(self._session, prefix, day, self._batch_size)
        return self._codes.pop()

    async def _load_tickets(self, inbounds: Sequence[Inbound]) -> None:
        refs = [mid for inbound in inbounds for mid in inbound.message.thread_ids()]
        await self._load_refs(refs)
        codes = {code for inbound in inbounds for code in codes_in(inbound.message.subject)}
        codes |= {signed.code.upper() for inbound in inbounds for signed in inbound.signed}
        for chunk in _chunks(codes):
            query = select(Ticket).where(Ticket.code.in_(chunk))
            self._by_code.update((t.code, self._remember(t)) for t in await self._scalars(query))
        self._by_code.update((code, None) for code in codes - self._by_code.keys())

    async def _load_refs(self, message_ids: Iterable[str]) -> None:
        wanted = set(message_ids) - self._refs.keys()
        found: dict[str, int] = {}
        for chunk in _chunks(wanted):
            query = select(ThreadRef.message_id, ThreadRef.ticket_id)
            found.update(await self._rows(query.where(ThreadRef.message_id.in_(chunk))))
        await self._load_ids(set(found.values()))
        for message_id in wanted:
            self._refs[message_id] = self._by_id.get(found.get(message_id, 0))

    async def _load_ids(self, ids: set[int]) -> None:
        for chunk in _chunks(ids - self._by_id.keys()):
            for ticket in await self._scalars(select(Ticket).where(Ticket.id.in_(chunk))):
                self._remember(ticket)

    def _remember(self, ticket: Ticket) -> Ticket:
        self._by_id[ticket.id] = ticket
        return ticket

    async def _survivor(self, ticket: Ticket | None) -> Ticket | None:
        """Follow merges: a merged ticket's mail belongs to the ticket it went into."""
        for _ in range(MAX_MERGE_HOPS):
            if ticket is None or ticket.merged_into_id is None:
                return ticket
            await self._load_ids({ticket.merged_into_id})
            ticket = self._by_id.get(ticket.merged_into_id)
        return ticket

    # -- participants ---------------------------------------------------------------

    async def participants(self, ticket: Ticket) -> set[str]:
        """The addresses on ``ticket`` (customer and CCs), lower-case."""
        if ticket not in self._participants:
            await self._load_participants([ticket])
        return self._participants[ticket]

    def joined(self, ticket: Ticket, email: str) -> None:
        self._participants.setdefault(ticket, set()).add(email)

    async def _load_participants(self, tickets: list[Ticket]) -> None:
        by_id = {ticket.id: ticket for ticket in tickets}
        for ticket in tickets:
            self._participants[ticket] = set()
        for chunk in _chunks(by_id):
            query = select(Participant.ticket_id, Participant.email)
            for ticket_id, email in await self._rows(query.where(Participant.ticket_id.in_(chunk))):
                self._participants[by_id[ticket_id]].add(email.lower())

    # -- sending limits (mailgate.outbox.ratelimit.SendingLimits) -------------------

    async def suppressed(self, addresses: Iterable[str]) -> set[str]:
        wanted = list(addresses)
        await self._load_suppressed({a.lower() for a in wanted} - self._suppressed.keys())
        return {address for address in wanted if self._suppressed[address.lower()]}

    async def take(self, limits: Sequence[Limit], now: datetime) -> str | None:
        """As ``ratelimit.take``, counting the batch's own events too."""
        windows = [(key, seconds) for key, (_, seconds) in limits]
        await self._hold_and_count([window for window in windows if window not in self._counts])
        for key, (count, seconds) in limits:
            if self._counts[key, seconds] >= count:
                return key
        for window in windows:
            self._counts[window] += 1
            add_row(self._session, RateEvent, key=window[0], at=now)
        return None

    async def _load_suppressed(self, emails: set[str]) -> None:
        if not emails:
            return
        now = datetime.now(UTC)
        found: set[str] = set()
        for chunk in _chunks(emails):
            query = select(func.lower(Suppression.email)).where(
                func.lower(Suppression.email).in_(chunk), Suppression.until > now
            )
            found.update(await self._scalars(query))
        self._suppressed.update((email, email in found) for email in emails)

    def _rate_windows(self, senders: set[str]) -> list[tuple[str, int]]:
        """The keys a batch's acknowledgements and notifications will count under,
        each with the seconds its limit looks back."""
        codes = [ticket.code for ticket in self._by_id.values()]
        agents = self._agents
        return [
            *((ack_key(sender), self._ack_window) for sender in senders),
            *((notify_key(agent), self._agent_window) for agent in agents),
            *((notify_key(agent, code), self._ticket_window) for agent in agents for code in codes),
        ]

    async def _hold_and_count(self, windows: Sequence[tuple[str, int]]) -> None:
        """How many events each (key, seconds) had in its last ``seconds``: counted in
        the database, one query per look-back, however many events there are. The
        keys are held first, in one statement, until the batch commits: another
        pipeline counting them waits for this batch's events."""
        if not windows:
            return
        await hold_keys(self._session, [key for key, _ in windows])
        now = datetime.now(UTC)
        by_seconds: dict[int, list[str]] = {}
        for key, seconds in windows:
            self._counts[key, seconds] = 0
            by_seconds.setdefault(seconds, []).append(key)
        for seconds, keys in by_seconds.items():
            since = now - timedelta(seconds=seconds)
            for chunk in _chunks(set(keys)):
                query = (
                    select(RateEvent.key, func.count())
                    .where(RateEvent.key.in_(chunk), RateEvent.at > since)
                    .group_by(RateEvent.key)
                )
                for key, count in await self._rows(query):
                    self._counts[key, seconds] = count

    # -- plumbing ---------------------------------------------------------------------

    async def _rows(self, query) -> list[tuple]:
        return list((await self._session.execute(query)).all())

    async def _scalars(self, query) -> list:
        return list(await self._session.scalars(query))


def _chunks(values: Iterable) -> Iterable[list]:
    values = list(values)
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]
