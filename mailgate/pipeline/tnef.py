"""TNEF (``winmail.dat``, application/ms-tnef): the files Outlook wrapped inside.

A small reader of the attribute stream described in [MS-OXTNEF]: each attachment
starts at ``attAttachRendData``; its name comes from ``attAttachTitle`` or, better,
the MAPI property ``PR_ATTACH_LONG_FILENAME`` inside ``attAttachment``; its bytes
from ``attAttachData`` or ``PR_ATTACH_DATA_OBJ``. Message bodies (RTF) are not
decoded. The reader walks offsets over the buffer without copying it, checks every
length against what is left and stops at ``MAX_FILES``, so hostile input costs at
most one pass over at most ``MAX_ATTRIBUTES``; anything malformed raises ``TnefError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SIGNATURE = 0x223E9F78
MAX_FILES = 200
MAX_ATTRIBUTES = 5000  # a real winmail.dat has a few dozen per file

ATT_ATTACH_REND_DATA = 0x9002
ATT_ATTACH_TITLE = 0x8010
ATT_ATTACH_DATA = 0x800F
ATT_ATTACHMENT = 0x9005
ATT_OEM_CODEPAGE = 0x9007
LEVEL_ATTACHMENT = 0x02

PR_DISPLAY_NAME = 0x3001
PR_ATTACH_DATA_OBJ = 0x3701
PR_ATTACH_FILENAME = 0x3704
PR_ATTACH_LONG_FILENAME = 0x3707
PR_ATTACH_MIME_TAG = 0x370E

PT_STRING8, PT_UNICODE, PT_BINARY, PT_OBJECT = 0x001E, 0x001F, 0x0102, 0x000D
MV_FLAG = 0x1000
# Padded sizes of the fixed-length MAPI property types.
_FIXED = {0x2: 4, 0x3: 4, 0x4: 4, 0x5: 8, 0x6: 8, 0x7: 8, 0xA: 4, 0xB: 4, 0x14: 8, 0x40: 8,
          0x48: 16}  # fmt: skip


class TnefError(ValueError):
    """Not a TNEF stream, or a broken one."""


@dataclass
class TnefFile:
    name: str = ""
    content_type: str = ""
    data: bytes = b""
    names: dict[int, str] = field(default_factory=dict)  # property id -> a filename


class _Reader:
    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.buf = memoryview(data)
        self.pos = pos

    def take(self, size: int) -> memoryview:
        if size < 0 or self.pos + size > len(self.buf):
            raise TnefError(f"truncated at byte {self.pos}")
        chunk = self.buf[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def left(self) -> int:
        return len(self.buf) - self.pos


def extract(data: bytes) -> list[TnefFile]:
    """The attached files of a TNEF stream, in order."""
    reader = _Reader(data)
    if reader.left() < 6 or reader.u32() != SIGNATURE:
        raise TnefError("not a TNEF stream (bad signature)")
    reader.take(2)  # legacy key
    files: list[TnefFile] = []
    codepage = "cp1252"
    for count in range(MAX_ATTRIBUTES + 1):
        if reader.left() < 11:
            break
        if count == MAX_ATTRIBUTES:
            raise TnefError(f"more than {MAX_ATTRIBUTES} TNEF attributes")
        level = reader.take(1)[0]
        attr_id = reader.u32() & 0xFFFF
        value = reader.take(reader.u32())
        reader.take(2)  # checksum: not checked, a wrong one is common and harmless
        if attr_id == ATT_OEM_CODEPAGE and len(value) >= 4:
            codepage = f"cp{struct.unpack('<I', value[:4])[0]}"
        elif attr_id == ATT_ATTACH_REND_DATA:
            if len(files) >= MAX_FILES:
                break
            files.append(TnefFile())
        elif level == LEVEL_ATTACHMENT and files:
            _attachment_attribute(files[-1], attr_id, value, codepage)
    for item in files:
        item.name = next((item.names[k] for k in _NAME_ORDER if item.names.get(k)), "")
    return [item for item in files if item.data or item.name]


# Best name first; ATT_ATTACH_TITLE is the legacy 8.3 title.
_NAME_ORDER = (PR_ATTACH_LONG_FILENAME, PR_ATTACH_FILENAME, ATT_ATTACH_TITLE, PR_DISPLAY_NAME)


def _attachment_attribute(item: TnefFile, attr_id: int, value: memoryview, codepage: str) -> None:
    if attr_id == ATT_ATTACH_TITLE:
        item.names[ATT_ATTACH_TITLE] = _text(bytes(value), codepage)
    elif attr_id == ATT_ATTACH_DATA:
        item.data = bytes(value)
    elif attr_id == ATT_ATTACHMENT:
        for prop_id, prop_type, raw in _properties(value):
            if prop_id == PR_ATTACH_DATA_OBJ and prop_type in (PT_BINARY, PT_OBJECT):
                item.data = bytes(raw[16:] if prop_type == PT_OBJECT else raw)
            elif prop_id == PR_ATTACH_MIME_TAG and prop_type in (PT_STRING8, PT_UNICODE):
                item.content_type = _string(raw, prop_type, codepage)
            elif prop_id in _NAME_ORDER and prop_type in (PT_STRING8, PT_UNICODE):
                item.names[prop_id] = _string(raw, prop_type, codepage)


def _properties(value: memoryview) -> list[tuple[int, int, memoryview]]:
    """(property id, type, first value) of each MAPI property in an attribute."""
    reader = _Reader(value)
    found = []
    for _ in range(min(reader.u32(), len(value) // 4)):
        prop_type, prop_id = reader.u16(), reader.u16()
        if prop_id >= 0x8000:  # named property: GUID, then a number or a name
            reader.take(16)
            if reader.u32() == 0:
                reader.u32()
            else:
                reader.take(_padded(reader.u32()))
        values = _values(reader, prop_type)
        if values:
            found.append((prop_id, prop_type & ~MV_FLAG, values[0]))
    return found


def _values(reader: _Reader, prop_type: int) -> list[memoryview]:
    base = prop_type & ~MV_FLAG
    variable = base in (PT_STRING8, PT_UNICODE, PT_BINARY, PT_OBJECT)
    if base not in _FIXED and not variable:
        raise TnefError(f"unknown MAPI property type {prop_type:#06x}")
    count = reader.u32() if variable or prop_type & MV_FLAG else 1
    if count > reader.left():
        raise TnefError("MAPI value count larger than the data")
    values = []
    for _ in range(count):
        if variable:
            size = reader.u32()
            values.append(reader.take(size))
            reader.take(_padded(size) - size)
        else:
            values.append(reader.take(_FIXED[base]))
    return values


def _padded(size: int) -> int:
    return (size + 3) & ~3


def _string(raw: memoryview, prop_type: int, codepage: str) -> str:
    if prop_type == PT_UNICODE:
        return bytes(raw).decode("utf-16-le", "replace").split("\0", 1)[0]
    return _text(bytes(raw), codepage)


def _text(raw: bytes, codepage: str) -> str:
    raw = raw.split(b"\0", 1)[0]
    try:
        return raw.decode(codepage)
    except (LookupError, UnicodeDecodeError):
        return raw.decode("latin-1")
