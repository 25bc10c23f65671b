"""``mailgate reprocess``: quarantined entries run again, each at most once."""

from __future__ import annotations

import asyncio
import subprocess

from mailgate.db.migrate import upgrade
from mailgate.pipeline.journal import Arrival, entry_rows, write_entries
from tests.support import journal_entries
from tests.test_pipeline import mail


async def quarantined_entry(engine) -> int:
    """A good message left in quarantine, as if an older version had failed on it.

    Written quarantined in one transaction: a running daemon's pipeline must never
    see it pending."""
    await upgrade(engine)
    raw = mail("Left behind")
    [row] = entry_rows([Arrival("smtp", "carol@client.test", ("support@example.test",), raw)])
    row.update(state="quarantined", error="apply: RuntimeError: a bug since fixed")
    async with engine.begin() as connection:
        [entry_id] = await write_entries(connection, [row])
        return entry_id


def run(setup, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        setup.command("reprocess", *args), capture_output=True, text=True, timeout=120
    )


async def test_reprocess_runs_a_quarantined_entry_once(setup, engine):
    entry_id = await quarantined_entry(engine)
    setup.write()
    first = await asyncio.to_thread(run, setup, "--all")
    assert first.returncode == 0, first.stderr
    assert "1 done" in first.stdout
    [entry] = await journal_entries(engine)
    assert entry.state == "done" and entry.error is None
    again = await asyncio.to_thread(run, setup, str(entry_id))
    assert again.returncode == 0 and "1 skipped" in again.stdout
