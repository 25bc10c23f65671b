"""What the composition root hands the web application, as one typed object."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate.actions import ActionContext
from mailgate.db.nodes import NodeHeartbeat
from mailgate.health import Problem, local_problems
from mailgate.intake.imap import ImapIntake
from mailgate.outbox.compose import Composer
from mailgate.pipeline.journal import Journal
from mailgate.runtime import RuntimeConfig
from mailgate.signing import Signer


@dataclass
class DaemonStatus:
    """What the daemon is running, for the status page and the metrics.

    Filled in by the daemon as it starts its listeners and mailboxes.
    """

    started_at: float = field(default_factory=time.time)
    listeners: list[str] = field(default_factory=list)  # "smtp 127.0.0.1:2525"
    imap: list[ImapIntake] = field(default_factory=list)
    node: NodeHeartbeat | None = None  # this daemon's heartbeat


@dataclass(frozen=True)
class WebContext:
    engine: AsyncEngine
    runtime: RuntimeConfig
    signer: Signer
    composer: Composer
    # Mail made on the web (portal replies, the public form) enters the pipeline here.
    journal: Journal | None = None
    wake_delivery: Callable[[], None] = lambda: None
    status: DaemonStatus = field(default_factory=DaemonStatus)
    # Quarantined journal entries (all for None) through the daemon's own pipeline.
    reprocess: Callable[[list[int] | None], Awaitable[Counter[str]]] | None = None
    # A ticket changed: the SLA timer stores its state now, not at its next round.
    wake_sla: Callable[[], None] = lambda: None

    def actions(self) -> ActionContext:
        """What the ticket actions (web pages and API alike) act with."""
        return ActionContext(self.runtime, self.composer)


def own_problems(context: WebContext) -> list[Problem]:
    """The daemon's own trouble writing: mail into the journal, its heartbeat."""
    journal = context.journal.failing if context.journal else None
    node = context.status.node
    return local_problems(journal, node.write_error if node else None)
