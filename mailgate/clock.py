"""The time SLA due times are measured against: the system's, or a test's.

One ``Clock`` is made at start-up and carried in the ``RuntimeConfig``; the SLA timer
and the web's SLA views (the inbox filters, the API's ``sla`` objects) ask it for
"now", and nothing else does: mail, sessions and rate limits keep the system time.

For tests of the running daemon, and only for them, ``MAILGATE_CLOCK_FILE`` names a
file holding a number of seconds (a float; a missing or unreadable file is 0). The
clock runs that far ahead of the system's. The file is read again only when its
modification time changes, so moving time forward is one write, seen by the daemon
at its next look. What happens to a ticket is still recorded at the
system's time, so after a move it counts as having happened that much earlier (an
agent's reply then meets a target it would have missed): move the clock, then look.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

CLOCK_FILE_VARIABLE = "MAILGATE_CLOCK_FILE"


class Clock:
    """System time, moved ahead by the offset in ``offset_file`` if there is one."""

    def __init__(self, offset_file: Path | None = None) -> None:
        self._file = offset_file
        self._stamp: int | None = None
        self._offset = timedelta()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Clock:
        named = environ.get(CLOCK_FILE_VARIABLE, "")
        if named:
            log.warning("%s is set: SLA times run on the offset in %s", CLOCK_FILE_VARIABLE, named)
        return cls(Path(named) if named else None)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset()

    def offset(self) -> timedelta:
        if self._file is None:
            return timedelta()
        try:
            stamp = os.stat(self._file).st_mtime_ns
        except OSError:
            return timedelta()
        if stamp != self._stamp:
            self._stamp, self._offset = stamp, self._read()
        return self._offset

    def _read(self) -> timedelta:
        try:
            return timedelta(seconds=float(self._file.read_text().strip() or 0))
        except (OSError, ValueError, OverflowError):
            return timedelta()
