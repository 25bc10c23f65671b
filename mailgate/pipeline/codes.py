"""Ticket codes: ``PREFIX-YYYYMMDD-XXXX``, unique, never reused.

XXXX comes from an alphabet without look-alikes (no 0/O, 1/I/L, U/V), so a code read
aloud or typed from a printout still finds its ticket: 29**4 = 707,281 codes a day.
"""

from __future__ import annotations

import re
import secrets
from datetime import date

ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
SUFFIX_LENGTH = 4


def new_code(prefix: str, day: date) -> str:
    suffix = "".join(secrets.choice(ALPHABET) for _ in range(SUFFIX_LENGTH))
    return f"{prefix}-{day:%Y%m%d}-{suffix}"


def code_pattern(prefix: str) -> re.Pattern[str]:
    """Finds ``[PREFIX-YYYYMMDD-XXXX]`` (brackets optional) in a subject, any case."""
    return re.compile(
        rf"(?<![A-Z0-9]){re.escape(prefix)}-\d{{8}}-[{ALPHABET}]{{{SUFFIX_LENGTH}}}(?![A-Z0-9])",
        re.IGNORECASE,
    )


def codes_in(subject: str, prefix: str) -> list[str]:
    return [match.upper() for match in code_pattern(prefix).findall(subject)]
