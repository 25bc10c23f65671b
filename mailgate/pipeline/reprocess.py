"""Running quarantined journal entries through the pipeline again.

Shared by ``mailgate reprocess`` (with a pipeline of its own) and the admin page (with
the daemon's running pipeline). An entry is taken only while it is still quarantined,
so two admins, or an admin and the CLI, never run one entry twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate.db.models import JournalEntry
from mailgate.pipeline.worker import PipelineWorker, quarantined_ids


async def reprocess(
    pipeline: PipelineWorker,
    engine: AsyncEngine,
    entry_ids: list[int] | None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> Counter[str]:
    """Run the entries named (all quarantined ones for None); outcomes by name, with
    ``skipped`` for an entry that was not (or no longer) quarantined."""
    ids = entry_ids if entry_ids is not None else await quarantined_ids(engine)
    outcomes: Counter[str] = Counter()
    for done, entry_id in enumerate(ids, start=1):
        if await _take(engine, entry_id, pipeline.node):
            outcomes[(await pipeline.process([entry_id]))[0].split(" ")[0]] += 1
        else:
            outcomes["skipped"] += 1
        progress(done, len(ids))
    return outcomes


async def _take(engine: AsyncEngine, entry_id: int, node: str) -> bool:
    """Claim a quarantined entry for ``node`` (a live node: no pipeline loop takes it)."""
    async with engine.begin() as connection:
        result = await connection.execute(
            update(JournalEntry)
            .where(JournalEntry.id == entry_id, JournalEntry.state == "quarantined")
            .values(state="processing", claimed_by=node, claimed_at=datetime.now(UTC))
        )
    return result.rowcount == 1
