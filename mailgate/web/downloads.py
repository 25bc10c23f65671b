"""Downloads of stored files: attachments (agent pages, the API, the portal) and
original mail.

A download is always ``Content-Disposition: attachment`` under ``nosniff`` and a
sandboxing policy: a file a customer sent never renders as one of our pages.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Attachment, Blob, Message
from mailgate.numbers import whole_number

DOWNLOAD_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*", re.ASCII)
_NOT_PLAIN = re.compile(r'[^\x20-\x7e]|["\\]')  # outside printable ASCII, or a quote


async def find_attachment(
    session: AsyncSession, wanted: str, which: ColumnElement[bool]
) -> tuple[bytes, str, str] | None:
    """The bytes, name and type of attachment ``wanted`` (its id as the URL gives it)
    if it belongs to one of the messages ``which`` selects; else None."""
    number = whole_number(wanted)
    if number is None:
        return None
    row = (
        await session.execute(
            select(Blob.data, Attachment.filename, Attachment.content_type)
            .join(Message, Message.id == Attachment.message_id)
            .join(Blob, Blob.sha256 == Attachment.sha256)
            .where(Attachment.id == number, which)
        )
    ).first()
    return tuple(row) if row else None


def download(data: bytes, filename: str, content_type: str) -> web.Response:
    response = web.Response(body=data, content_type=_safe_type(content_type))
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["Content-Security-Policy"] = DOWNLOAD_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _safe_type(content_type: str) -> str:
    """The stored type if it is a plain ``type/subtype``, else octet-stream."""
    return (
        content_type.lower() if _MEDIA_TYPE.fullmatch(content_type) else "application/octet-stream"
    )


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name (RFC 6266)."""
    filename = filename or "attachment"
    fallback = _NOT_PLAIN.sub("_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
