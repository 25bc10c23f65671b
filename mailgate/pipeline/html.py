"""HTML mail bodies: a sanitised copy for display, and plain text derived from it.

``sanitise`` runs nh3 with a conservative allow-list: no scripts, styles, event
handlers, forms or frames; links only to http(s)/mailto/tel; images keep their
alt text but never a ``src`` (no remote fetches, no tracking pixels, no unmapped
``cid:``). ``to_text`` converts the *sanitised* HTML, so the pure-Python HTML parser
only ever sees nh3's well-formed output, never a hostile original.
The caller bounds the input size.
"""

from __future__ import annotations

import re
from html import unescape

import nh3


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TAGS = _names(
    "a abbr b bdi bdo blockquote br caption center cite code col colgroup dd del div dl "
    "dt em font h1 h2 h3 h4 h5 h6 hr i img ins kbd li ol p pre q s small span strike strong "
    "sub sup table tbody td tfoot th thead tr tt u ul"
)
# Dropped together with their content (the rest of the unlisted tags keep their text).
_CLEAN_CONTENT = _names(
    "script style head title template iframe frame frameset object embed applet svg math "
    "noscript noembed noframes xmp textarea select button"
)
_CELL = {"align", "valign", "colspan", "rowspan"}
_ATTRIBUTES = {
    "*": {"title", "dir", "lang"},
    "a": {"href"},
    "img": {"alt", "width", "height"},
    "td": _CELL,
    "th": _CELL,
    "ol": {"start"},
    "font": {"color"},
}
_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})


def sanitise(html: str, remote_images: bool = False) -> str:
    """HTML that is safe to show inside our pages.

    ``remote_images`` keeps the ``src`` of http(s) images, for an agent who asked to
    see a message's remote content (the web shows it; nothing stores it).
    """
    attributes = {tag: set(names) for tag, names in _ATTRIBUTES.items()}
    if remote_images:
        attributes["img"].add("src")
    return nh3.clean(
        html,
        tags=set(_TAGS),
        clean_content_tags=set(_CLEAN_CONTENT),
        attributes=attributes,
        attribute_filter=_remote_src_only if remote_images else None,
        url_schemes=set(_URL_SCHEMES),
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )


def _remote_src_only(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src":
        return value if value.strip().lower().startswith(("http://", "https://")) else None
    return value


_BLOCKS = _names(
    "p div br tr table ul ol dl dt dd h1 h2 h3 h4 h5 h6 pre hr blockquote center caption"
)
# nh3 writes well-formed tags with double-quoted attributes and escapes "<" in text,
# so this pattern finds exactly its tags.
_TAG = re.compile(r'<(/?)([a-z][a-z0-9]*)((?:\s+[^\s=>/]+(?:="[^"]*")?)*)\s*/?>')
_HREF = re.compile(r'\shref="([^"]*)"')


class _TextWriter:
    """Collects text: blocks become line breaks, links keep their URL, quotes get ``>``."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self._quote = 0
        self._pre = 0
        self._links: list[tuple[str, int]] = []  # href, where its text starts in out

    def start(self, tag: str, attributes: str) -> None:
        self._quote += tag == "blockquote"
        self._pre += tag == "pre"
        if tag == "li":
            self._newline()
            self.out.append("- ")
        elif tag in _BLOCKS:
            self._newline(blank=tag in ("p", "blockquote", "table", "h1", "h2", "h3"))
        elif tag in ("td", "th") and not self._at_line_start():
            self.out.append(" ")
        if tag == "a":
            href = _HREF.search(attributes)
            self._links.append((unescape(href.group(1)) if href else "", len(self.out)))

    def end(self, tag: str) -> None:
        if tag == "a" and self._links:
            href, start = self._links.pop()
            shown = "".join(self.out[start:]).strip()
            if href and not href.startswith("mailto:") and href != shown:
                self.out.append(f" ({href})")
        self._quote -= tag == "blockquote" and self._quote > 0
        self._pre -= tag == "pre" and self._pre > 0
        if tag in _BLOCKS:
            self._newline(blank=tag in ("p", "blockquote", "table"))

    def data(self, data: str) -> None:
        if not data.strip() and (self._at_line_start() or not data):
            return
        if not self._pre:
            data = re.sub(r"\s+", " ", data)
            if self._at_line_start():
                data = data.lstrip(" ")
        self.out.append(unescape(data).replace("\n", "\n" + "> " * self._quote))

    def _at_line_start(self) -> bool:
        return not self.out or self.out[-1].endswith(("\n", "> "))

    def _newline(self, blank: bool = False) -> None:
        prefix = "> " * self._quote
        self.out.append(f"\n{prefix}\n{prefix}" if blank else f"\n{prefix}")


def to_text(html: str) -> str:
    """Readable plain text of HTML that ``sanitise`` produced."""
    writer = _TextWriter()
    position = 0
    for match in _TAG.finditer(html):
        writer.data(html[position : match.start()])
        closing, tag, attributes = match.groups()
        writer.end(tag) if closing else writer.start(tag, attributes)
        position = match.end()
    writer.data(html[position:])
    lines: list[str] = []
    for line in "".join(writer.out).split("\n"):
        line = line.rstrip()
        if not line.strip("> "):  # blank, or a bare quote marker: keep one in a row
            line = line.replace(" ", "")
            if lines and lines[-1] == line:
                continue
        lines.append(line)
    return "\n".join(lines).strip("\n")


_ANY_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]{0,40})[^<>]*?(/?)>")
_VOID = _names("area base br col embed hr img input link meta param source track wbr")
_SIBLINGS = _names("p li dt dd tr td th option")  # a new one closes the open one


def nesting_cost(html: str, limit: int) -> int:
    """About how many open elements the HTML5 tree builder will scan: each start tag
    checks the stack of open elements, so deep nesting costs depth x tags (nh3 takes
    a second for 20,000 nested ``<div>``). Stops counting past ``limit``."""
    tags = html.count("<")
    if tags * tags // 2 <= limit:  # cheap bound: no deeper than there are tags
        return tags * tags // 2
    stack: list[str] = []
    cost = 0
    for match in _ANY_TAG.finditer(html):
        closing, tag, self_closing = match.group(1), match.group(2).lower(), match.group(3)
        if closing:
            _close(stack, tag)
        elif tag not in _VOID and not self_closing:
            if tag in _SIBLINGS and stack and stack[-1] == tag:
                stack.pop()
            cost += len(stack)
            stack.append(tag)
            if cost > limit:
                break
    return cost


def _close(stack: list[str], tag: str) -> None:
    """Pop up to the nearest open ``tag`` (looking back a bounded way)."""
    for index in range(len(stack) - 1, max(-1, len(stack) - 33), -1):
        if stack[index] == tag:
            del stack[index:]
            return


def strip_tags(html: str) -> str:
    """Text of HTML too costly to sanitise: every tag dropped, nothing interpreted."""
    text = unescape(re.sub(r"<[^<>]*>", " ", html))
    return "\n".join(" ".join(line.split()) for line in text.splitlines()).strip()
