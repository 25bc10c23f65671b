"""Quoted history: split the new text of a reply from the history it quotes.

A compact line scanner. (mail-parser-reply was tried: it knows no Indonesian, and
its attribution pattern backtracks: one 32 KB line of "On a a a ..." took 36 s.)
History starts at the first of:
- an attribution line, in the languages our customers write ("On … wrote:",
  "Am … schrieb …:", "Pada … menulis:", "Le … a écrit :", "Op … schreef …:",
  "El … escribió:"), also when a mail client wrapped it over two lines;
- an Outlook block: "-----Original Message-----" or a "From:" line followed by
  "Sent:"/"Date:"/"To:"/"Subject:" lines (English, German, Indonesian, …);
- a trailing block of ``>`` lines.
It is conservative: interleaved answers (new text between ``>`` lines) and a mail
whose new part would be empty stay whole. Every pattern is anchored and bounded,
cheap substring tests skip mail without hints, and only lines up to ``MAX_LINE``
characters are examined, so the work stays linear in the text.
"""

from __future__ import annotations

import re

MAX_LINE = 1000

_ATTRIBUTION = re.compile(
    r"(?:On\s.{1,400}\swrote|Am\s.{1,400}\sschrieb.{0,200}|Pada\s.{1,400}\smenulis"
    r"|Le\s.{1,400}\sa\s+écrit|Op\s.{1,400}\sschreef.{0,200}|El\s.{1,400}\sescribió)\s?:",
    re.IGNORECASE,
)
_ATTRIBUTION_START = ("on ", "am ", "pada ", "le ", "op ", "el ")
_SEPARATOR = re.compile(
    r"-{3,}\s*(?:Original Message|Ursprüngliche Nachricht|Pesan Asli|Message d'origine"
    r"|Oorspronkelijk bericht|Mensaje original)\s*-{3,}",
    re.IGNORECASE,
)
_FROM = re.compile(r"\*?(?:From|Von|Dari|De|Van)\s?:\*?\s", re.IGNORECASE)
_FIELD = re.compile(
    r"\*?(?:Sent|Date|To|Cc|Subject|Gesendet|Datum|An|Betreff|Dikirim|Tanggal|Kepada"
    r"|Subjek|Envoyé|Objet|Verzonden|Onderwerp|Aan|Enviado|Asunto|Para)\s?:",
    re.IGNORECASE,
)


# Lines that may start quoted history; only these get the closer (slower) checks.
_CANDIDATE = re.compile(
    r"^[ \t]*(?:>|-{3}|[_-]{10}|\*?(?:from|von|dari|de|van)\s?:|(?:on|am|pada|le|op|el)\s)",
    re.IGNORECASE | re.MULTILINE,
)


# Cheap substring tests first: most mail has none of these and costs no regex scan.
_HINTS = ("\n>", "\n >", "---", "___", "from:", "von:", "dari:", "de:", "van:", "wrote",
          "schrieb", "menulis", "écrit", "schreef", "escribió")  # fmt: skip


def split_quoted(text: str) -> tuple[str, str]:
    """(new text, quoted history); the history is "" when none was found."""
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):
        return text, ""
    lines = text.split("\n")
    start = _history_start(text, lines)
    if start is None:
        return text, ""
    new = "\n".join(lines[:start]).rstrip()
    if not new.strip():
        return text, ""
    return new, "\n".join(lines[start:]).strip("\n")


def _history_start(text: str, lines: list[str]) -> int | None:
    tail: list[str] = []
    index, position = 0, 0
    for match in _CANDIDATE.finditer(text):
        index += text.count("\n", position, match.start())
        position = match.start()
        line = lines[index]
        if len(line) > MAX_LINE:
            continue
        stripped = line.strip()
        if _SEPARATOR.fullmatch(stripped) or _outlook_header(lines, index):
            return _above_underline(lines, index)
        tail = tail or _tail_kinds(lines)
        span = _attribution(lines, index)
        if span and tail[min(index + span, len(lines))] != "mixed":
            return index
        if stripped.startswith(">") and tail[index] == "quoted":
            return index
    return None


def _tail_kinds(lines: list[str]) -> list[str]:
    """For each index: are the non-blank lines from there on all "quoted" (``>``), all
    "plain", "mixed" (answers between quotes), or "" (none)? One pass from the end."""
    kinds = [""] * (len(lines) + 1)
    for index in range(len(lines) - 1, -1, -1):
        stripped = lines[index].strip()
        after = kinds[index + 1]
        if not stripped:
            kinds[index] = after
            continue
        kind = "quoted" if stripped.startswith(">") else "plain"
        kinds[index] = kind if after in ("", kind) else "mixed"
    return kinds


def _attribution(lines: list[str], index: int) -> int:
    """How many lines (1 or 2) the attribution starting here spans, or 0.

    It must carry a digit (a date or time), so "On Monday you wrote:" typed by a
    person does not count.
    """
    line = lines[index].strip()
    if not line.lower().startswith(_ATTRIBUTION_START):
        return 0
    following = lines[index + 1].strip() if index + 1 < len(lines) else ""
    for span, candidate in ((1, line), (2, f"{line} {following}")):
        if span == 2 and not (following and len(following) < 200):
            break
        if _ATTRIBUTION.fullmatch(candidate) and any(c.isdigit() for c in candidate):
            return span
    return 0


def _outlook_header(lines: list[str], index: int) -> bool:
    if not _FROM.match(lines[index].strip()):
        return False
    fields = [line.strip() for line in lines[index + 1 : index + 5] if line.strip()]
    return sum(1 for field in fields[:3] if _FIELD.match(field)) >= 2


def _above_underline(lines: list[str], index: int) -> int:
    """Include an Outlook "______" rule right above the header block."""
    if index and re.fullmatch(r"[_-]{10,}", lines[index - 1].strip()):
        return index - 1
    return index
