"""Our addresses, ticket codes and signed reply addresses: pure functions."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from mailgate.addresses import RouteTable, base_address
from mailgate.config import Route
from mailgate.pipeline.codes import ALPHABET, codes_in, new_code
from mailgate.signing import Signer

ROUTES = RouteTable(
    [
        Route(address="support@example.test", queue="support"),
        Route(address="Billing@Example.test", queue="billing"),
        Route(address="*@help.example.test", queue="catch"),
    ]
)


def test_recipients_match_case_insensitively_with_subaddresses():
    assert ROUTES.match("SUPPORT@EXAMPLE.TEST").queue == "support"
    assert ROUTES.match("support+tck-1.abc@example.test").queue == "support"
    assert ROUTES.match("<billing@example.test>").queue == "billing"
    assert ROUTES.match("anything@help.example.test").queue == "catch"
    assert ROUTES.match("sales@example.test") is None
    assert ROUTES.match("not-an-address") is None
    assert base_address("Support+X@Example.Test") == "support@example.test"


def test_ticket_codes_have_the_documented_shape():
    code = new_code("TCK", date(2025, 7, 25))
    assert code.startswith("TCK-20250725-") and len(code) == 17
    assert all(char in ALPHABET for char in code[-4:])
    assert not set("01ILOUV") & set(ALPHABET)


def test_codes_found_in_reply_subjects():
    subject = "Re: AW: Fwd: [tck-20250725-7pxa] Printer"
    assert codes_in(subject) == ["TCK-20250725-7PXA"]
    assert codes_in("XTCK-20250725-7PXA") == ["XTCK-20250725-7PXA"]  # any prefix
    assert codes_in("TCK-20250725-7PX0 ATCK-20250725-7PXA2") == []


def test_signed_reply_addresses():
    signer = Signer(b"k" * 32)
    agents = ["alice@example.test", "bob@example.test"]
    customer = signer.reply_address("support@example.test", "TCK-20250725-7PXA")
    for_alice = signer.reply_address("support@example.test", "TCK-20250725-7PXA", agents[0])
    assert customer.startswith("support+tck-20250725-7pxa.") and customer != for_alice
    read = signer.read_reply_address(customer.upper(), agents)
    assert (read.code, read.agent) == ("TCK-20250725-7PXA", None)
    assert signer.read_reply_address(for_alice, agents).agent == "alice@example.test"
    forged = customer.replace("7pxa", "7pxb")
    assert signer.read_reply_address(forged, agents) is None
    other_key = Signer(b"x" * 32)
    assert other_key.read_reply_address(customer, agents) is None


def test_signed_note_addresses_bind_the_agent_and_the_purpose():
    signer = Signer(b"k" * 32)
    agents = ["alice@example.test", "bob@example.test"]
    note = signer.note_address("support@example.test", "TCK-20250725-7PXA", agents[1])
    assert note.startswith("support+tck-20250725-7pxa.note.")
    read = signer.read_reply_address(note.upper(), agents)
    assert (read.code, read.agent, read.note) == ("TCK-20250725-7PXA", "bob@example.test", True)
    reply = signer.reply_address("support@example.test", "TCK-20250725-7PXA", agents[1])
    assert signer.read_reply_address(reply, agents).note is False
    # A reply MAC under a note mark (or the other way round) is not valid.
    local, _, domain = reply.partition("@")
    code, _, mac = local.rpartition(".")
    assert signer.read_reply_address(f"{code}.note.{mac}@{domain}", agents) is None
    assert signer.read_reply_address(note, ["carol@example.test"]) is None


@given(st.text(max_size=80))
def test_reading_any_address_never_raises(address):
    Signer(b"k" * 32).read_reply_address(address, ["a@b.c"])


def test_portal_tokens():
    signer = Signer(b"k" * 32)
    token = signer.portal_token("TCK-20250725-7PXA")
    assert signer.check_portal_token("tck-20250725-7pxa", token.upper())
    assert not signer.check_portal_token("TCK-20250725-7PXB", token)


def test_signed_values_stay_what_mail_already_sent_carries():
    """Reply addresses, portal links and bounce addresses in mail sent by earlier
    versions must still verify: the MAC's form never changes."""
    signer = Signer(b"test-secret")
    code = "TCK-20261129-ABCD"
    reply = signer.reply_address("support@example.test", code)
    assert reply == "support+tck-20261129-abcd.eljy4om4shslf3li@example.test"
    assert signer.portal_token(code) == "gmysywoht5p6kq6k"
    bounce = signer.bounce_address("support@example.test", 42)
    assert bounce == "support+bounce-42.25wt732bagzfkgc6@example.test"
    assert signer.read_bounce_address(bounce) == 42


def test_non_ascii_macs_and_tokens_are_simply_wrong():
    signer = Signer(b"k" * 32)
    code = "TCK-20250725-7PXA"
    assert not signer.check_portal_token(code, "é" * 16)
    assert not signer.verify("session", "tökén", "ñ" * 16)
    assert not signer.verify("csrf", "seed\udcff", "x")
    forged = f"support+{code.lower()}.{'é' * 16}@example.test"
    assert signer.read_reply_address(forged, ["alice@example.test"]) is None
    assert signer.read_bounce_address("support+bounce-²." + "a" * 16 + "@example.test") is None
    assert signer.read_bounce_address("support+bounce-7.ééééééééééééééé@example.test") is None
