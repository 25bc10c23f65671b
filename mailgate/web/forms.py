"""Public forms: reading a multipart body under a size limit, and session-less CSRF tokens.

The portal and the web form have no session to bind a CSRF token to: the portal's
token is bound to the ticket's portal token, the web form's to the time it was
served (valid for a day), both signed with the server secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, web

from mailgate.intake.webform import Upload
from mailgate.numbers import whole_number
from mailgate.signing import Signer
from mailgate.web.badinput import FORM_UNREADABLE, UNREADABLE, bad_request, posted_form

MAX_FIELD_BYTES = 1 << 20
CHUNK = 64 << 10
TOKEN_SECONDS = 24 * 3600


@dataclass
class Submitted:
    """A form as posted: text fields, files, and whether it went over the size limit.

    ``chosen`` names every file that was posted, kept or not: a form shown again
    cannot hold them (browsers do not let a page fill a file input), so the person
    is told which ones to choose again."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)
    too_large: bool = False
    chosen: list[str] = field(default_factory=list)

    def text(self, name: str) -> str:
        return self.fields.get(name, "").strip()

    def choose_again(self, words) -> list[str]:
        """The notice of a form shown again with files it had: none without files."""
        if not self.chosen:
            return []
        return [words["err_files_again"].format(names=", ".join(self.chosen))]


async def read_form(request: web.Request, limit: int) -> Submitted:
    """Read text fields and files; past ``limit`` bytes the files are dropped and
    ``too_large`` is set, and past four times the limit the request is refused (413)."""
    if request.content_type != "multipart/form-data":
        posted = await posted_form(request)
        return Submitted({k: v for k, v in posted.items() if isinstance(v, str)})
    try:
        return await _read_multipart(request, limit)
    except UNREADABLE:
        raise bad_request(FORM_UNREADABLE) from None


async def _read_multipart(request: web.Request, limit: int) -> Submitted:
    form, total = Submitted(), 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise web.HTTPBadRequest(text="nested multipart is not a form")
        data = await _read_part(part, 4 * limit - total)
        total += len(data)
        if part.filename is None:
            form.too_large |= len(data) > MAX_FIELD_BYTES
            form.fields[part.name or ""] = data[:MAX_FIELD_BYTES].decode("utf-8", "replace")
        elif part.filename and data:
            form.chosen.append(part.filename)
            form.files.append(Upload(part.filename, part.headers.get("Content-Type", ""), data))
    if total > limit:
        form.too_large, form.files = True, []
    return form


async def _read_part(part: BodyPartReader, room: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > room:
            raise web.HTTPRequestEntityTooLarge(max_size=room, actual_size=len(data))
    return bytes(data)


def timed_token(signer: Signer, purpose: str) -> str:
    """A CSRF token for a form served now: ``<unix time>.<mac>``."""
    issued = str(int(time.time()))
    return f"{issued}.{signer.sign(purpose, issued)}"


def check_timed_token(signer: Signer, purpose: str, token: str) -> bool:
    issued, _, mac = token.partition(".")
    when = whole_number(issued)
    if when is None or not 0 <= time.time() - when <= TOKEN_SECONDS:
        return False
    return signer.verify(purpose, issued, mac)
