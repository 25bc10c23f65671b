"""The classify step: each rule fires on its corpus mail with the reason an agent
reads, and no rule fires on ordinary customer mail."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailgate.pipeline import classify as rules
from mailgate.pipeline import system_senders
from mailgate.pipeline.classify import Verdict, classify, is_automatic, own_loop
from mailgate.pipeline.parse import parse

DATA = Path(__file__).parent / "data"
OURS = frozenset({"support@example.test", "billing@example.test"})


def load(name: str, replace: tuple[bytes, bytes] = (b"", b"")):
    raw = (DATA / name).read_bytes()
    return parse(raw.replace(*replace) if replace[0] else raw)


def sender_of(message) -> str:
    return message.sender.email if message.sender else "someone@example.com"


@pytest.mark.parametrize(
    ("rule", "name", "envelope", "verdict"),
    [
        (rules.auto_submitted, "autoreply_rfc3834.eml", None,
         Verdict("auto_reply", "Auto-Submitted: auto-replied")),
        (rules.autoreply_headers, "vacation_xautoreply.eml", None,
         Verdict("auto_reply", "X-Autoreply: yes")),
        (rules.response_suppress, "exchange_oof.eml", None,
         Verdict("auto_reply", "X-Auto-Response-Suppress: All")),
        (rules.subject_pattern, "exchange_oof.eml", None,
         Verdict("auto_reply", "auto-reply subject (en): Automatic reply: Invoice question")),
        (rules.subject_pattern, "balasan_otomatis.eml", None,
         Verdict("auto_reply", "auto-reply subject (id): Balasan otomatis: Pertanyaan tagihan")),
        (rules.subject_pattern, "abwesenheitsnotiz.eml", None,
         Verdict("auto_reply", "auto-reply subject (de): Abwesenheitsnotiz: Ihre Anfrage")),
        (rules.inbox_rule, "abwesenheitsnotiz.eml", None,
         Verdict("auto_reply", "sent by a mail rule (x-ms-exchange-inbox-rules-loop)", weak=True)),
        (rules.subject_pattern, "vacation_xautoreply.eml", None,
         Verdict("auto_reply", "auto-reply subject (en): Out of Office", weak=True)),
        (rules.delivery_report, "dsn_postfix.eml", "",
         Verdict("bounce", "delivery status notification "
                 "(multipart/report; report-type=delivery-status)")),
        (rules.delivery_report, "ndr_exchange.eml", None,
         Verdict("bounce", "delivery status notification "
                 "(multipart/report; report-type=delivery-status)")),
        (rules.non_delivery, "ndr_exchange.eml", None,
         Verdict("bounce", "non-delivery report (X-MS-Exchange-Message-Is-Ndr)")),
        (rules.non_delivery, "ndr_mixed_delivery_status.eml", None,
         Verdict("bounce", "contains a delivery status report (message/delivery-status)")),
        (rules.empty_return_path, "dsn_postfix.eml", "",
         Verdict("bounce", "return path is empty (bounce)")),
        (rules.empty_return_path, "dsn_postfix.eml", "<>",
         Verdict("bounce", "return path is empty (bounce)")),
        (rules.mailer_daemon, "dsn_postfix.eml", "",
         Verdict("bounce", "sender is MAILER-DAEMON")),
        (rules.list_id, "list_mail.eml", None,
         Verdict("list", "List-Id: Users of Example <users.lists.example.org>")),
        (rules.precedence, "list_mail.eml", None, Verdict("list", "Precedence: list")),
        (rules.precedence, "bulk.eml", None, Verdict("bulk", "Precedence: bulk")),
    ],
)  # fmt: skip
def test_rule_fires_on_its_mail_with_a_reason(rule, name, envelope, verdict):
    message = load(name)
    envelope = sender_of(message) if envelope is None else envelope
    assert rule(message, envelope) == verdict
    assert verdict in classify(message, envelope, OURS)


ORDINARY = [
    "customer_plain.eml",
    "customer_list_unsubscribe_only.eml",
    "customer_out_of_office_subject.eml",
    "reply_en.eml",
    "reply_id.eml",
    "reply_outlook.eml",
    "html_only.eml",
    "winmail.eml",
    "forwarded_rfc822.eml",
    "iso2022jp.eml",
]


@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_customer_mail_is_not_automatic(name):
    message = load(name)
    verdicts = classify(message, sender_of(message), OURS, "support@example.test")
    assert verdicts == ()
    assert not is_automatic(verdicts)


@pytest.mark.parametrize("rule", rules.RULES, ids=lambda rule: rule.__name__)
def test_no_rule_fires_on_a_plain_customer_mail(rule):
    message = load("customer_plain.eml")
    assert rule(message, "kim@customer.example") is None


def test_auto_submitted_no_is_a_person():
    message = load("customer_plain.eml", (b"X-Mailer:", b"Auto-Submitted: no\r\nX-Mailer:"))
    assert rules.auto_submitted(message, "kim@customer.example") is None


def test_auto_generated_is_its_own_kind():
    message = load("customer_plain.eml", (b"X-Mailer:", b"Auto-Submitted: auto-generated\r\nX:"))
    verdict = rules.auto_submitted(message, "kim@customer.example")
    assert verdict == Verdict("auto_generated", "Auto-Submitted: auto-generated")


def test_response_suppress_without_oof_flags_is_a_person():
    message = load("exchange_oof.eml", (b"Suppress: All", b"Suppress: DR, NDR, RN"))
    assert rules.response_suppress(message, "dave@contoso.example") is None


def test_a_vacation_like_subject_alone_is_not_enough():
    message = load("vacation_xautoreply.eml", (b"X-Autoreply: yes\r\nX-Mailer: vacation", b"X:"))
    assert rules.subject_pattern(message, "erin@example.edu").weak
    assert classify(message, "erin@example.edu", OURS) == ()


def test_postmaster_sender_is_a_bounce():
    message = load("customer_plain.eml")
    verdict = rules.mailer_daemon(message, "Postmaster@mx.customer.example")
    assert verdict == Verdict("bounce", "sender is postmaster")


def test_list_unsubscribe_needs_precedence():
    message = load("customer_list_unsubscribe_only.eml")
    assert rules.unsubscribe_with_precedence(message, "hana@partner.example") is None
    marked = load("bulk.eml", (b"Precedence: bulk", b"Precedence: first-class"))
    verdict = rules.unsubscribe_with_precedence(marked, "news@shop.example")
    assert verdict == Verdict("bulk", "List-Unsubscribe with Precedence: first-class")


def test_read_receipts_and_other_reports_are_automatic():
    message = load(
        "dsn_postfix.eml", (b"report-type=delivery-status", b"report-type=disposition-notification")
    )
    verdict = rules.delivery_report(message, "")
    assert verdict == Verdict(
        "report", "automatic report (multipart/report; report-type=disposition-notification)"
    )


def test_x_loop_naming_us_is_a_loop():
    message = load("xloop_only.eml")
    expected = Verdict("loop", "X-Loop: our own mail (support@example.test)")
    assert classify(message, "ivy@example.com", OURS) == (expected,)
    assert classify(message, "ivy@example.com", lambda address: address in OURS) == (expected,)
    assert classify(message, "ivy@example.com", frozenset(), "support@example.test") == (expected,)
    assert classify(message, "ivy@example.com") == ()


def test_our_own_sender_is_a_loop():
    message = load("own_loop.eml", (b"X-Loop: support@example.test\r\n", b""))
    rule = own_loop(lambda address: address in OURS)
    assert rule(message, "bounces@example.test") == Verdict(
        "loop", "sender is our own address support@example.test"
    )


def test_loop_check_is_case_insensitive():
    message = load("xloop_only.eml", (b"X-Loop: support@", b"X-Loop: <Support@"))
    assert classify(message, "ivy@example.com", OURS)[0].kind == "loop"


def test_all_verdicts_are_returned_in_rule_order():
    message = load("dsn_postfix.eml")
    verdicts = classify(message, "", OURS)
    assert [v.reason for v in verdicts] == [
        "Auto-Submitted: auto-replied",
        "bounce subject (en): Undelivered Mail Returned to Sender",
        "delivery status notification (multipart/report; report-type=delivery-status)",
        "carries a returned message (text/rfc822-headers)",
        "return path is empty (bounce)",
        "sender is MAILER-DAEMON",
    ]
    assert is_automatic(verdicts)


def test_reasons_are_one_bounded_line():
    message = load("list_mail.eml", (b"List-Id: Users", b"List-Id: " + b"x" * 5000 + b"\r\n Users"))
    (verdict,) = [
        v for v in classify(message, "greg@example.org") if v.reason.startswith("List-Id")
    ]
    assert len(verdict.reason) <= rules.MAX_REASON + len("List-Id: ") and "\n" not in verdict.reason


def test_unknown_return_path_is_not_a_bounce():
    """IMAP mail without a Return-Path header: the sender is unknown, not empty."""
    message = load("customer_plain.eml")
    assert classify(message, None) == ()
    assert classify(message, "")[0].kind == "bounce"


@pytest.mark.parametrize(
    ("address", "system"),
    [
        ("MAILER-DAEMON", "MAILER-DAEMON"),
        ("<MAILER-DAEMON@mx.example>", "MAILER-DAEMON"),
        ("mailer_daemon@mx.example", "MAILER-DAEMON"),
        ("Mail-Daemon@mx.example", "MAILER-DAEMON"),
        ("Postmaster@mx.example", "postmaster"),
        ("MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.example",
         "Exchange's system mailbox"),
        ("postmaster.kim@client.example", None),
        ("daemon-tools@client.example", None),
        ("kim@client.example", None),
    ],
)  # fmt: skip
def test_mail_system_senders(address, system):
    assert system_senders.mail_system(address) == system


@pytest.mark.parametrize(
    ("address", "robot", "no_reply"),
    [
        ("users-owner@lists.example.org", True, False),
        ("users-bounces+kim=client.example@lists.example.org", True, False),
        ("owner-users@lists.example.org", True, False),
        ("LISTSERV@LISTS.EXAMPLE.EDU", True, False),
        ("noreply@shop.example", False, True),
        ("no-reply@shop.example", False, True),
        ("do-not-reply@bank.example", False, True),
        ("groups-noreply@googlegroups.example", False, True),
        ("kim@client.example", False, False),
        ("norene@client.example", False, False),
        ("", False, False),
    ],
)
def test_list_robots_and_no_reply_senders(address, robot, no_reply):
    assert system_senders.list_robot(address) == robot
    assert system_senders.takes_no_replies(address) == no_reply


def test_one_hint_is_not_enough_two_are():
    message = load("customer_plain.eml", (b"X-Mailer:", b"X-MS-Exchange-Inbox-Rules-Loop: k\r\nX:"))
    assert classify(message, "kim@customer.example") == ()
    forwarded = load("forwarded_rfc822.eml")
    envelope = sender_of(forwarded)
    assert classify(forwarded, envelope) == ()
    both = load(
        "forwarded_rfc822.eml", (b"Subject:", b"X-MS-Exchange-Inbox-Rules-Loop: k\r\nSubject:")
    )
    assert {v.weak for v in classify(both, envelope)} == {True}
