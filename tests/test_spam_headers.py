"""Spam verdicts an MTA wrote into the header: believed on a trusted path only."""

from __future__ import annotations

import pytest

from mailgate.pipeline.parse import parse
from mailgate.pipeline.spam_headers import header_verdict
from tests.test_pipeline import mail

MX = "mx.example.com"


def verdict(extra: str, trusted_path: bool = True):
    return header_verdict(parse(mail("Hello", extra=extra)), trusted_path, [MX])


@pytest.mark.parametrize(
    ("header", "source", "score"),
    [
        ("X-Spam-Flag: YES", "X-Spam-Flag", None),
        ("X-Spam-Status: Yes, score=12.3 required=5.0 tests=BAYES_99", "X-Spam-Status", 12.3),
        ("X-Spam: Yes", "X-Spam", None),
        (
            "X-Spamd-Result: default: True [15.00 / 15.00];\r\n\tGTUBE(0.00)[]",
            "X-Spamd-Result",
            15.0,
        ),
        ("X-Rspamd-Action: add header", "X-Rspamd-Action", None),
        (f"Authentication-Results: {MX}; dmarc=fail header.from=client.test", None, None),
    ],
)
def test_a_trusted_mta_s_spam_verdict_counts(header, source, score):
    found = verdict(header + "\r\n")
    assert found is not None and found.is_spam
    assert found.source == (source or f"Authentication-Results ({MX})")
    assert found.score == score


@pytest.mark.parametrize(
    "header",
    [
        "X-Spam-Flag: NO",
        "X-Spam-Status: No, score=-0.1 required=5.0",
        "X-Spamd-Result: default: False [1.20 / 15.00]",
        "X-Rspamd-Action: no action",
        "X-Rspamd-Action: greylist",
        f"Authentication-Results: {MX}; dmarc=pass header.from=client.test",
        # Another host's verdict, or one below a header that is not ours: the sender's.
        "Authentication-Results: evil.test; dmarc=fail header.from=client.test",
        "Authentication-Results: evil.test; none\r\n"
        f"Authentication-Results: {MX}; dmarc=fail header.from=client.test",
        "Authentication-Results: (((",
    ],
)
def test_headers_that_do_not_say_spam_say_nothing(header):
    assert verdict(header + "\r\n") is None


def test_nothing_is_read_off_an_untrusted_path():
    assert verdict("X-Spam-Flag: YES\r\n", trusted_path=False) is None
    dmarc = f"Authentication-Results: {MX}; dmarc=fail header.from=client.test\r\n"
    assert verdict(dmarc, trusted_path=False) is None
