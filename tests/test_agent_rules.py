"""The pure parts of agent mail: authentication and the command parser."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailgate.pipeline.agents import check_agent, trusted_pass
from mailgate.pipeline.commands import has_content, parse_commands
from mailgate.pipeline.parse import parse
from mailgate.signing import SignedReply

AGENTS = {"alice@example.test", "bob@example.test"}
TRUSTED = ["mx.example.test"]


def message(sender="Alice <Alice@Example.test>", headers=""):
    raw = f"From: {sender}\r\nTo: support@example.test\r\n{headers}Subject: x\r\n\r\nHi\r\n"
    return parse(raw.encode())


def test_signed_agent_address_authenticates_only_that_agent():
    signed_alice = [SignedReply("TCK-20261122-AAAA", "alice@example.test")]
    check = check_agent(message(), signed_alice, AGENTS, TRUSTED)
    assert (check.agent, check.how, check.flag) == (
        "alice@example.test",
        "signed reply address",
        None,
    )
    note = [SignedReply("TCK-20261122-AAAA", "alice@example.test", note=True)]
    assert check_agent(message(), note, AGENTS, TRUSTED).note
    bob = check_agent(message("bob@example.test"), signed_alice, AGENTS, TRUSTED)
    assert bob.agent is None and "not authenticated" in bob.flag
    stranger = check_agent(message("eve@evil.test"), signed_alice, AGENTS, TRUSTED)
    assert stranger.agent is None and "signed address of agent alice" in stranger.flag
    customer = check_agent(message("carol@client.test"), [], AGENTS, TRUSTED)
    assert (customer.agent, customer.flag) == (None, None)


def test_authentication_results_dkim_or_spf_for_the_agents_domain():
    cases = {
        "mx.example.test; dkim=pass header.d=example.test": True,
        "MX.EXAMPLE.TEST; dkim=pass header.i=@Example.Test": True,
        "mx.example.test 1; spf=pass smtp.mailfrom=alice@example.test": True,
        "mx.example.test; dkim=pass header.d=evil.test; spf=fail smtp.mailfrom=example.test": False,
        "mx.example.test; dkim=fail header.d=example.test": False,
        "mx.example.test; dkim=pass header.d=sub.example.test": False,
        "mx.evil.test; dkim=pass header.d=example.test": False,
        "mx.example.test; none": False,
        "mx.example.test; dkim=pass (" + "a (b " * 600: False,  # the library recurses
        "garbage;;; ===": False,
    }
    for value, trusted in cases.items():
        assert bool(trusted_pass([value], "alice@example.test", TRUSTED)) is trusted, value


def test_only_the_topmost_trusted_headers_count():
    ours = "mx.example.test; dkim=none"
    forged = "mx.example.test; dkim=pass header.d=example.test"
    other = "relay.elsewhere.test; spf=pass smtp.mailfrom=example.test"
    assert trusted_pass([ours, forged], "alice@example.test", TRUSTED)  # strip it, RFC 8601
    assert not trusted_pass([other, forged], "alice@example.test", TRUSTED)
    assert not trusted_pass([], "alice@example.test", TRUSTED)
    header = f"Authentication-Results: {other}\r\nAuthentication-Results: {forged}\r\n"
    assert check_agent(message(headers=header), [], AGENTS, TRUSTED).agent is None
    header = f"Authentication-Results: {forged}\r\n"
    check = check_agent(message(headers=header), [], AGENTS, TRUSTED)
    assert check.agent == "alice@example.test" and "dkim=pass" in check.how


def test_a_failure_in_the_trusted_block_outweighs_a_pass_under_it():
    forged = "mx.example.test; dkim=pass header.d=example.test"
    for verdict in ("spf=fail", "spf=softfail", "dkim=temperror", "dmarc=fail", "spf=permerror"):
        ours = f"mx.example.test; {verdict} smtp.mailfrom=alice@example.test"
        assert not trusted_pass([ours, forged], "alice@example.test", TRUSTED), verdict
        assert not trusted_pass([forged, ours], "alice@example.test", TRUSTED), verdict
    neutral = "mx.example.test; spf=neutral smtp.mailfrom=example.test; iprev=fail"
    assert trusted_pass([neutral, forged], "alice@example.test", TRUSTED)
    below = "relay.elsewhere.test; spf=fail smtp.mailfrom=example.test"  # not ours: unread
    assert trusted_pass([forged, below], "alice@example.test", TRUSTED)


def test_commands_at_the_top_are_parsed_and_removed():
    parsed = parse_commands(
        "#Status On Hold\n\n#assign me\n#TAG vip\n#untag billing\nHello,\n#status ignored\n"
    )
    assert [(c.name, c.value) for c in parsed.commands] == [
        ("status", "On Hold"),
        ("assign", "me"),
        ("tag", "vip"),
        ("untag", "billing"),
    ]
    assert parsed.text == "Hello,\n#status ignored" and parsed.problems == ()
    assert parse_commands("#note\nInternal.").note
    plain = parse_commands("Hello\n#1 thing to do")
    assert plain.commands == () and plain.text == "Hello\n#1 thing to do"


def test_command_problems_are_named_line_by_line():
    parsed = parse_commands("#staus solved\n#status\n#note now\n#priority low\n#priority high\nHi")
    assert parsed.problems == (
        "#staus solved: unknown command (known: #status, #assign, #priority, #tag, #untag, #note)",
        "#status: #status needs a value",
        "#note now: #note takes no value; write the text below it",
        "#priority high: #priority is given more than once",
    )


def test_a_signature_alone_is_no_content():
    assert not has_content("\n-- \nAlice\nSupport")
    assert has_content("Thanks!\n-- \nAlice")


@given(st.text(max_size=300))
def test_parsing_any_text_never_raises_and_keeps_the_rest(text):
    parsed = parse_commands(text)
    assert parsed.text in text or not parsed.text.strip()
