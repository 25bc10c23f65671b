"""Where a client may send us next: a path on this site, or home.

A ``next=`` value comes from whoever wrote the link, so it is read the way a browser
would read it. Browsers drop tabs and newlines from a URL, take a backslash for a
slash and ``//host`` for another site; a server or proxy may decode ``%2f`` once more.
A value is taken only if no reading of it, percent-decoded again and again, could
leave this site; anything else goes to ``/``. What is sent back is percent-encoded
ASCII, so it is safe in a ``Location`` header and in an ``href``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

HOME = "/"
MAX_DECODINGS = 4  # more layers of percent-encoding than that is no honest link
ENCODED_SLASH = re.compile(r"%(2f|5c)", re.IGNORECASE)
# Kept as they are: the characters with a meaning in a path and query, and ``%``
# (the value's own escapes are left alone, not encoded twice).
KEPT = "/?#&=;:@!$'()*+,%~-._"


def local_path(value: object) -> str:
    """``value`` when it is a path on this site (``/tickets?tab=x``), else ``/``."""
    if not isinstance(value, str):
        return HOME
    readings = _decodings(value)
    if readings is None or not all(_stays_here(reading) for reading in readings):
        return HOME
    return quote(value, safe=KEPT)


def _decodings(value: str) -> list[str] | None:
    """``value`` and each percent-decoding of it until nothing changes; None when it
    does not settle."""
    readings = [value]
    for _ in range(MAX_DECODINGS):
        decoded = unquote(readings[-1])
        if decoded == readings[-1]:
            return readings
        readings.append(decoded)
    return None


def _stays_here(reading: str) -> bool:
    """A path from the root of this site: no second slash or backslash to make it
    another host, no encoded slash, no control or invisible character."""
    path = re.split(r"[?#]", reading, maxsplit=1)[0]
    return (
        path.startswith("/")
        and not path.startswith("//")
        and "\\" not in reading
        and not ENCODED_SLASH.search(path)
        and reading.isprintable()
    )
