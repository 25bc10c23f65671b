"""Arbitrary bytes in the journal, mixed with good mail, through the pipeline worker's
batch path itself (claim, group, load, parse, classify, apply), on SQLite and
PostgreSQL: no pass raises, every entry ends in a final state, and every good mail
becomes a ticket.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mailgate.db.migrate import upgrade
from mailgate.db.models import JournalEntry, Message
from mailgate.pipeline.journal import Arrival, insert_entries
from mailgate.pipeline.worker import MAX_DATABASE_TRIES
from tests.test_pipeline import mail
from tests.test_pipeline_isolation import SUPPORT, make_worker

FINAL = {"done", "duplicate", "quarantined"}
GOOD = b"<good mail>"  # stands for a good mail in a drawn batch

# Pieces of mail-like text, so that drawn bytes reach the MIME, header, address and
# threading code and not only the parser's first refusal.
HEADS = st.sampled_from(
    [
        b"",
        b"From: \x00 <@>\r\n",
        b"From: x@client.test\r\nSubject: =?utf-8?b?AAAA?=\r\nMessage-ID: <a@b>\r\n",
        b"Content-Type: multipart/mixed; boundary=z\r\nMIME-Version: 1.0\r\n",
        b"In-Reply-To: <x@y>\r\nReferences: <<<>>>\r\nSubject: Re: [TCK-20260101-AAAA]\r\n",
        b"Auto-Submitted: auto-replied\r\nContent-Type: message/delivery-status\r\n",
        b"To: support+TCK-20260101-AAAA.0000@example.test\r\nFrom: alice@example.test\r\n",
        b"Content-Transfer-Encoding: base64\r\nContent-Type: text/html; charset=x-unknown\r\n",
    ]
)
BODIES = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.lists(
        st.sampled_from([b"--z\r\n", b"--z--\r\n", b"\r\n", b".\r\n", b"\x00"]), max_size=20
    ).map(b"".join),
)
ENTRIES = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda head, body: head + b"\r\n" + body, HEADS, BODIES),
    st.just(GOOD),
)


@pytest.fixture
async def migrated(engine):
    await upgrade(engine)
    return engine


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(ENTRIES, min_size=1, max_size=8).map(lambda drawn: [*drawn, GOOD]))
async def test_arbitrary_bytes_never_keep_good_mail_from_its_ticket(migrated, batch):
    engine = migrated
    numbers = itertools.count()
    raws = [mail(f"Good mail {next(numbers)}") if raw == GOOD else raw for raw in batch]
    arrivals = [Arrival("smtp", "carol@client.test", (SUPPORT,), raw) for raw in raws]
    ids = await insert_entries(engine, arrivals)
    worker = make_worker(engine)
    for _ in range(MAX_DATABASE_TRIES):  # a lost race is retried by a later pass
        await worker.process_pending()
    states = await column(engine, JournalEntry.state, JournalEntry.id, ids)
    tickets = await column(engine, Message.ticket_id, Message.journal_id, ids)
    assert set(states.values()) <= FINAL, states
    good = [entry_id for entry_id, raw in zip(ids, batch, strict=True) if raw == GOOD]
    assert all(states[entry_id] == "done" and entry_id in tickets for entry_id in good)


async def column(engine, value, key, ids: list[int]) -> dict:
    """``value`` by ``key``, for the rows whose ``key`` is in ``ids``."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(key, value).where(key.in_(ids)))
        return dict(rows.all())
