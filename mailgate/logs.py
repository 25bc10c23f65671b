"""Structured logs to stderr as ``key=value`` lines.

Under systemd (``$JOURNAL_STREAM`` set) each line starts with a ``<N>`` syslog
priority, which journald turns into the entry's priority.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime

_PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\n\t'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        super().__init__()
        self._journald = journald

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        line = " ".join(f"{key}={_quote(value)}" for key, value in fields.items())
        if self._journald:
            return f"<{_PRIORITY.get(record.levelname, 6)}>{line}"
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        return f"ts={stamp} {line}"


def setup_logging(level: str = "info", plain: bool = False) -> None:
    """Logfmt lines to stderr; ``plain`` gives bare messages (an MTA quotes them in DSNs)."""
    handler = logging.StreamHandler(sys.stderr)
    if plain:
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler.setFormatter(LogfmtFormatter(journald=bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosmtpd logs every connection at INFO: far too chatty for a busy MX.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("aioimaplib").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiohttp.access").setLevel(max(logging.WARNING, root.level))
