"""The subject table, row by row: each row recognises its example; a row that decides
alone makes a plain mail automatic by its subject, a hint row needs a second hint; a
forward of it, and customers' sentences that mention the same words, stay ordinary."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailgate.pipeline.auto_subjects import ROWS, matching_row
from mailgate.pipeline.classify import classify
from mailgate.pipeline.parse import parse

PLAIN = (Path(__file__).parent / "data" / "customer_plain.eml").read_bytes()
SENDER = "kim@customer.example"
HINT = b"X-MS-Exchange-Inbox-Rules-Loop: kim@customer.example\r\n"


def plain_mail(subject: str, extra: bytes = b""):
    header = b"Subject: " + subject.encode() + b"\r\n" + extra
    return parse(PLAIN.replace(b"Subject: Cannot log in\r\n", header))


def row_id(row) -> str:
    return f"{row.language}-{row.kind}-{row.example[:40]}"


def test_the_table_covers_the_customers_languages():
    assert {row.language for row in ROWS} >= {"en", "id", "de", "fr", "es", "nl", "pt"}
    for language in ("id", "de", "fr", "es", "nl", "pt"):
        kinds = {row.kind for row in ROWS if row.language == language}
        assert kinds >= {"bounce", "auto_reply"}, language


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_row_recognises_its_example(row):
    found = matching_row(row.example)
    assert found is not None and row.compiled.match(row.example)
    assert (found.kind, found.alone) == (row.kind, row.alone) or found.alone


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_row_alone_decides_only_when_trusted(row):
    verdicts = classify(plain_mail(row.example), SENDER)
    assert bool(verdicts) == row.alone
    with_hint = classify(plain_mail(row.example, HINT), SENDER)
    assert row.kind in {verdict.kind for verdict in with_hint}


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_a_forward_of_the_subject_is_no_match(row):
    for prefix in ("Fwd: ", "FW: ", "WG: ", "TR: ", "RV: ", "Re: "):
        assert matching_row(prefix + row.example) is None


CUSTOMER_SUBJECTS = [
    "My delivery failed twice this week",
    "Why did the delivery failed notice come?",
    "Undeliverable parcel returned to sender",
    "Question about an undeliverable address",
    "Automatic reply settings are broken",
    "Can I set an auto-reply for my team?",
    "Failure notice on my invoice",
    "Pesanan saya tidak terkirim",
    "Balasan otomatis tidak jalan di aplikasi",
    "Wie stelle ich eine Abwesenheitsnotiz ein?",
    "Réponse automatique ne marche pas",
    "La respuesta automática no funciona",
    "Automatisch antwoord instellen lukt niet",
    "A resposta automática não funciona",
]


@pytest.mark.parametrize("subject", CUSTOMER_SUBJECTS)
def test_customers_mentioning_the_words_are_no_match_that_decides(subject):
    row = matching_row(subject)
    assert row is None or not row.alone
    assert classify(plain_mail(subject), SENDER) == ()
