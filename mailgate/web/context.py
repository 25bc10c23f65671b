"""What the composition root hands the web application, as one typed object."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

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
