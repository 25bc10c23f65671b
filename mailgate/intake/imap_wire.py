"""Pure helpers for the IMAP intake: reading aioimaplib responses, writing UID sets,
cutting work into bounded batches, and the envelope sender of a fetched message.

aioimaplib hands back a response as a list of lines: ``bytes`` for protocol lines
(without the leading ``* ``) and ``bytearray`` for literal data, the tagged status
text last. Nothing here does I/O, so each piece is tested on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_RETURN_PATH = re.compile(rb"(?im)^Return-Path:[ \t]*<([^<>\r\n]*)>")
_HEADER_SCAN = 64 * 1024


def search_uids(lines: Sequence[bytes]) -> list[int]:
    """The numbers of a ``SEARCH`` response (every line but the tagged one)."""
    return [int(token) for line in lines[:-1] for token in line.split() if token.isdigit()]


def fetched_sizes(lines: Iterable[bytes | bytearray]) -> dict[int, int]:
    """UID -> RFC822.SIZE from a ``UID FETCH (RFC822.SIZE)`` response."""
    sizes = {}
    for line in lines:
        if isinstance(line, bytes) and _FETCH_START.match(line):
            uid, size = _UID.search(line), _SIZE.search(line)
            if uid and size:
                sizes[int(uid.group(1))] = int(size.group(1))
    return sizes


def fetched_bodies(lines: Iterable[bytes | bytearray]) -> list[tuple[int, bytes]]:
    """``(uid, raw)`` for each FETCH item that carried a literal body.

    The UID may come before or after the literal; items without a body (flag
    updates the server slips in) are left out.
    """
    found: list[tuple[int, bytes]] = []
    uid: int | None = None
    body: bytes | None = None
    for line in [*lines, b"0 FETCH ("]:  # a sentinel closes the last item
        if isinstance(line, bytearray):
            body = bytes(line)
            continue
        if _FETCH_START.match(line):
            if uid is not None and body is not None:
                found.append((uid, body))
            uid, body = None, None
        match = _UID.search(line)
        if match:
            uid = int(match.group(1))
    return found


def uid_set(uids: Iterable[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1:3,7,9:10"`` (a compact IMAP sequence set)."""
    ranges: list[list[int]] = []
    for uid in sorted(uids):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1][1] = uid
        else:
            ranges.append([uid, uid])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in ranges)


@dataclass(frozen=True)
class Batch:
    """Work for one journal transaction: UIDs to fetch, ``(uid, size)`` of messages too
    big to take, and the highest UID it settles (the next position in the mailbox)."""

    fetch: tuple[int, ...]
    too_big: tuple[tuple[int, int], ...]
    last_uid: int


def plan_batches(
    uids: Sequence[int],
    sizes: dict[int, int],
    limit: int,
    max_count: int,
    max_bytes: int,
    assumed_size: int,
) -> list[Batch]:
    """Cut ascending ``uids`` into batches of at most ``max_count`` messages and about
    ``max_bytes`` (one message over it still goes alone). ``sizes`` holds the large
    messages; any other is taken to be at most ``assumed_size`` bytes."""
    batches: list[Batch] = []
    fetch: list[int] = []
    too_big: list[tuple[int, int]] = []
    total, previous = 0, 0
    for uid in uids:
        size = sizes.get(uid, assumed_size)
        if size > limit:
            too_big.append((uid, size))
        else:
            if fetch and (len(fetch) >= max_count or total + size > max_bytes):
                batches.append(Batch(tuple(fetch), tuple(too_big), previous))
                fetch, too_big, total = [], [], 0
            fetch.append(uid)
            total += size
        previous = uid
    if uids:
        batches.append(Batch(tuple(fetch), tuple(too_big), uids[-1]))
    return batches


def return_path(raw: bytes) -> str:
    """The address in the first ``Return-Path:`` header, or "" (absent, ``<>``, not UTF-8)."""
    end = raw.find(b"\r\n\r\n", 0, _HEADER_SCAN)
    if end < 0:
        end = raw.find(b"\n\n", 0, _HEADER_SCAN)
    header = raw[: end if end >= 0 else _HEADER_SCAN]
    match = _RETURN_PATH.search(header)
    if not match:
        return ""
    try:
        return match.group(1).decode("utf-8").strip()
    except UnicodeDecodeError:
        return ""
