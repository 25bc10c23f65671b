"""The fault suite's short form (see tests/faults): every scenario on both databases,
a few trials each, against the real daemon. Each trial's line is printed; a trial
fails on any rule of issue 12's "Done when" it breaks. First, the suite's own
counting: a count that cannot see a loss would let every trial pass.

    .venv/bin/pytest -q -s tests/test_faults.py
"""

from __future__ import annotations

import asyncio
import smtplib
from collections import Counter

import pytest

from tests.faults.bench import SHORT
from tests.faults.disk import Unavailable
from tests.faults.load import Tally, message_id_of
from tests.faults.report import Figures
from tests.faults.scenarios import DATABASES, SCENARIOS, plan
from tests.faults.sink import CountingSink
from tests.support import need, wait_until

# kill9: the whole node, the daemon alone; database_outage: refused, black-holed
SHORT_TRIALS = {"kill9": 2, "worker_kill": 2, "database_outage": 2}
SHORT_FORM = plan(DATABASES, list(SCENARIOS), SHORT_TRIALS, seed=12)


def test_counts_see_loss_duplicates_and_doubled_acknowledgements():
    tally = Tally(offered=["t-1", "t-2", "t-3", "t-4"], accepted={"t-1", "t-2", "t-3"})
    tickets = Counter({"t-1": 1, "t-2": 2})
    acks = Counter({message_id_of("t-1"): 3})
    figures = Figures("kill9", "sqlite", "test", in_flight=1)
    figures.count(tally, tickets, acks)
    assert (figures.missing, figures.duplicate_tickets, figures.unsettled) == (1, 1, 1)
    assert (figures.acks_missing, figures.acks_duplicated) == (1, 2)
    assert len(figures.broken()) == 5, figures.broken()


def test_counts_of_a_clean_trial_break_no_rule():
    tally = Tally(offered=["t-1", "t-2"], accepted={"t-1", "t-2"})
    acks = Counter({message_id_of("t-1"): 2, message_id_of("t-2"): 1})
    figures = Figures("kill9", "sqlite", "test", in_flight=1, takeover=3.0, takeover_bound=10.0)
    figures.count(tally, Counter({"t-1": 1, "t-2": 1}), acks)
    assert figures.broken() == []
    figures.takeover = None  # not done within the bound
    assert figures.broken() == ["claims not taken over within 10s"]


def send_replies(port: int, parents: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        for parent in parents:
            raw = f"Subject: Re\r\nIn-Reply-To: {parent}\r\n\r\nthanks\r\n"
            client.sendmail("support@example.test", ["c@client.test"], raw)


async def test_counting_sink_counts_per_message_answered_and_open_connections():
    sink = CountingSink()
    await sink.start()
    try:
        await asyncio.to_thread(send_replies, sink.port, ["<a@x>", "<b@x>", "<a@x>"])
        assert sink.acks == Counter({"<a@x>": 2, "<b@x>": 1})
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10):
            await wait_until(_async(lambda: sink.open == 1), "an open connection")
        await wait_until(_async(lambda: sink.open == 0), "the connection closed")
    finally:
        await sink.stop()


def _async(check):
    async def checked():
        return check()

    return checked


@pytest.mark.parametrize("trial", SHORT_FORM, ids=lambda t: f"{t.scenario}-{t.database}-{t.number}")
async def test_fault_trial_keeps_every_rule(trial, tmp_path):
    try:
        figures = await SCENARIOS[trial.scenario](trial, SHORT, tmp_path)
    except Unavailable as reason:
        need(False, str(reason))
    print(figures.line())
    assert figures.broken() == [], figures.line()
