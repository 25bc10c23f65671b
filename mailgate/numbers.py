"""Numbers a client writes (a page size, an id in a path or a cursor), read safely.

``str.isdigit`` also says yes to "²" and "٣" (which ``int`` then refuses or reads
as 3), and a number past 2**63 makes the database raise: both were a 500.
"""

from __future__ import annotations

ID_MAX = 2**63 - 1  # the largest id column value (BIGINT)


def whole_number(text: str, maximum: int = ID_MAX) -> int | None:
    """``text`` as a number from 0 to ``maximum``, if it is written in ASCII digits."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    number = int(text)
    return number if number <= maximum else None


def storable_id(value: object) -> bool:
    """Whether ``value`` (decoded from JSON, say) is an int an id column can hold."""
    return type(value) is int and 0 <= value <= ID_MAX
