"""HTML mail on an agent's page: sanitised, and remote images only when asked.

The pipeline stores a sanitised copy of a message's HTML (``Message.html`` is only
ever written by ``pipeline.html.sanitise``) without any image sources: remote
images would tell the sender that, and when, the mail was read. When an agent asks
for a message's remote content, its HTML is sanitised again from the original
bytes with http(s) images kept, and only that response's Content-Security-Policy
lets the browser fetch them.
"""

from __future__ import annotations

import email
import email.policy

from mailgate.pipeline.html import nesting_cost, sanitise
from mailgate.pipeline.parse import MAX_HTML_NESTING
from mailgate.web.pages import CONTENT_SECURITY_POLICY

REMOTE_CONTENT_POLICY = CONTENT_SECURITY_POLICY.replace(
    "img-src 'self' data:", "img-src 'self' data: https: http:"
)


def has_images(stored: str) -> bool:
    """Whether the mail had images (their sources are gone from the stored copy)."""
    return "<img" in stored


def with_remote_content(raw: bytes) -> str | None:
    """The HTML of the original mail with its remote images, sanitised; None if it has
    none (or HTML too costly to sanitise, which the pipeline showed as text)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = []
    for part in message.walk():
        if part.get_content_type() == "text/html" and not part.is_attachment():
            try:
                parts.append(part.get_content())
            except (LookupError, UnicodeError):  # an unknown charset: skip that part
                continue
    markup = "\n".join(parts)
    if not markup or nesting_cost(markup, MAX_HTML_NESTING) > MAX_HTML_NESTING:
        return None
    return sanitise(markup, remote_images=True)
