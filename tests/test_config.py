"""Configuration: search order, validation errors naming key and line, secret files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailgate.config import ConfigError, find_config, load_config, parse_config


def mailgate_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mailgate", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_embedded_default_when_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILGATE_CONFIG", raising=False)
    loaded = load_config()
    assert loaded.path is None
    settings = loaded.settings
    assert settings.database.url == "sqlite+aiosqlite:///var/mailgate.db"
    assert settings.smtp.listen == ["127.0.0.1:2525"]
    assert settings.web.listen == "127.0.0.1:8080"
    assert settings.outbound.smarthost == ""
    assert [r.address for r in settings.routes] == ["support@example.test"]


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = tmp_path / "mailgate.toml"
    local.write_text("")
    from_env = tmp_path / "env.toml"
    monkeypatch.setenv("MAILGATE_CONFIG", str(from_env))
    assert find_config("explicit.toml") == Path("explicit.toml")
    assert find_config(None) == from_env
    monkeypatch.delenv("MAILGATE_CONFIG")
    assert find_config(None) == Path("mailgate.toml")


def test_wrong_type_names_key_and_line():
    text = '[smtp]\nhostname = "mx"\nmax_message_bytes = "lots"\n'
    with pytest.raises(ConfigError) as error:
        parse_config(text, "/etc/mailgate/mailgate.toml")
    assert "/etc/mailgate/mailgate.toml:3: smtp.max_message_bytes:" in str(error.value)


def test_unknown_route_field_names_key_and_line():
    text = (
        '[[routes]]\naddress = "support@example.test"\n\n'
        '[[routes]]\naddress = "billing@example.test"\nqueu = "billing"\n'
    )
    with pytest.raises(ConfigError) as error:
        parse_config(text, "cfg.toml")
    assert str(error.value) == "cfg.toml:6: routes[1].queu: unknown key"


def test_bad_value_in_a_route():
    text = '[[routes]]\naddress = "support@example.test"\nlocale = "fr"\n'
    with pytest.raises(ConfigError) as error:
        parse_config(text, "cfg.toml")
    assert "cfg.toml:3: routes[0].locale:" in str(error.value)


@pytest.mark.parametrize(
    ("labels", "complaint"), [('{ fr = "Résolu" }', "fr"), ('{ id = "" }', "at least 1")]
)
def test_status_labels_are_for_our_locales_and_not_empty(labels, complaint):
    statuses = "".join(
        f'[[tickets.statuses]]\nname = "{name}"\ncategory = "{name.lower()}"\n'
        + (f"labels = {labels}\n" if name == "Solved" else "")
        for name in ("New", "Open", "Solved", "Closed")
    )
    with pytest.raises(ConfigError) as error:
        parse_config(statuses, "cfg.toml")
    assert "tickets.statuses[2].labels" in str(error.value) and complaint in str(error.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[smtp]\nmax_sessions_per_client = 60\nmax_sessions_per_network = 40\n",
            "cfg.toml:3: smtp.max_sessions_per_network: Value error, must be at least "
            "max_sessions_per_client (60)",
        ),
        (
            '[smtp]\nuncapped_clients = ["127.0.0.1", "mta.example.test"]\n',
            "cfg.toml:2: smtp.uncapped_clients: Value error, 'mta.example.test' does not "
            "appear to be an IPv4 or IPv6 network",
        ),
        ("[web]\nheader_timeout_seconds = 0\n", "cfg.toml:2: web.header_timeout_seconds:"),
        ("[web]\nlive_poll_seconds = 0\n", "cfg.toml:2: web.live_poll_seconds:"),
        ("[web]\nlive_streams_per_agent = 0\n", "cfg.toml:2: web.live_streams_per_agent:"),
        ("[web]\npresence_timeout_seconds = 1\n", "cfg.toml:2: web.presence_timeout_seconds:"),
        ("[smtp]\nmax_recipients = 0\n", "cfg.toml:2: smtp.max_recipients:"),
    ],
)
def test_connection_limits_are_checked(text, expected):
    with pytest.raises(ConfigError) as error:
        parse_config(text, "cfg.toml")
    assert str(error.value).startswith(expected)


def test_an_older_config_with_a_raised_client_cap_still_loads():
    settings = parse_config("[smtp]\nmax_sessions_per_client = 60\n", "cfg.toml")
    assert settings.smtp.max_sessions_per_network == 60
    assert parse_config("", "cfg.toml").smtp.max_sessions_per_network == 50


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('rspamd_url = "127.0.0.1:11333"', "spam.rspamd_url"),
        ('rspamd_url = "http://127.0.0.1:11333/checkv2"', "spam.rspamd_url"),
        ("timeout_seconds = 0", "spam.timeout_seconds"),
    ],
)
def test_bad_spam_settings_name_key_and_line(line, key):
    with pytest.raises(ConfigError) as error:
        parse_config(f"[spam]\n{line}\n", "cfg.toml")
    assert f"cfg.toml:2: {key}:" in str(error.value)


def test_spam_check_is_off_unless_a_url_is_given():
    assert parse_config("", "cfg.toml").spam.rspamd_url == ""
    spam = parse_config('[spam]\nrspamd_url = "http://127.0.0.1:11333"\n', "cfg.toml").spam
    assert (spam.rspamd_url, spam.timeout_seconds) == ("http://127.0.0.1:11333", 5.0)


def test_toml_syntax_error_has_line():
    with pytest.raises(ConfigError) as error:
        parse_config('[smtp]\nhostname = "unterminated\n', "cfg.toml")
    assert "line 2" in str(error.value)


def test_secrets_from_files(tmp_path):
    (tmp_path / "secret").write_text("s3cret-key\n")
    (tmp_path / "smtp.pass").write_text("relay-pass\n")
    (tmp_path / "tokens").write_text("tok1\ntok2\n")
    text = (
        f'[web]\nsecret_key_file = "{tmp_path}/secret"\n'
        f'[outbound]\npassword_file = "{tmp_path}/smtp.pass"\n'
        f'[api]\ntokens_file = "{tmp_path}/tokens"\n'
    )
    settings = parse_config(text, "cfg.toml")
    assert settings.web.secret_key == "s3cret-key"
    assert settings.outbound.password == "relay-pass"
    assert settings.api.tokens == ["tok1", "tok2"]


def test_missing_secret_file_names_key(tmp_path):
    text = f'\n[web]\nsecret_key_file = "{tmp_path}/nope"\n'
    with pytest.raises(ConfigError) as error:
        parse_config(text, "cfg.toml")
    assert str(error.value).startswith("cfg.toml:3: web.secret_key_file: cannot read")


def test_check_config_command(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[[routes]]\naddress = "help@example.test"\n')
    result = mailgate_cli("--config", str(good), "check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "OK (1 routes" in result.stdout

    bad = tmp_path / "bad.toml"
    bad.write_text('[smtp]\nlisten = "127.0.0.1:25"\n')
    result = mailgate_cli("--config", str(bad), "check-config", cwd=tmp_path)
    assert result.returncode == 78
    assert f"{bad}:2: smtp.listen:" in result.stderr


TRUSTING = """
[smtp]
listen = ["127.0.0.1:2525"]
lmtp_listen = ["unix:/run/mailgate/lmtp"]
socket_mode = "{mode}"
socket_group = "{group}"

[auth]
trusted_authserv_ids = {ids}
trusted_paths = {paths}
"""


def trusting(paths='["unix:/run/mailgate/lmtp"]', ids='["mx.example.test"]', mode="0660",
             group="mail") -> str:  # fmt: skip
    return TRUSTING.format(paths=paths, ids=ids, mode=mode, group=group)


def test_a_trusted_path_must_be_a_way_in():
    settings = parse_config(trusting('["unix:/run/mailgate/lmtp", "deliver"]'), "cfg.toml")
    assert settings.auth.trusted_paths == ["unix:/run/mailgate/lmtp", "deliver"]
    with pytest.raises(ConfigError) as error:
        parse_config(trusting('["lmtp:/run/mailgate/lmtp", "imap:nowhere"]'), "cfg.toml")
    message = str(error.value)
    assert message.startswith("cfg.toml:10: auth.trusted_paths: 'lmtp:/run/mailgate/lmtp', ")
    assert "'imap:nowhere': not a listener address of [smtp] listen or lmtp_listen" in message


def check(tmp_path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "mailgate.toml"
    path.write_text(text)
    return mailgate_cli("--config", str(path), "check-config", cwd=tmp_path)


def test_check_config_explains_the_trust(tmp_path):
    quiet = check(tmp_path, trusting())
    assert quiet.returncode == 0 and "warning" not in quiet.stderr, quiet.stderr
    unread = check(tmp_path, trusting(paths="[]"))
    assert unread.returncode == 0
    assert "trusted_authserv_ids is set but auth.trusted_paths is empty" in unread.stderr
    assert "Authentication-Results headers are never read" in unread.stderr
    tcp = check(tmp_path, trusting(paths='["127.0.0.1:2525"]'))
    assert "127.0.0.1:2525 is a TCP listener: every local user" in tcp.stderr
    open_socket = check(tmp_path, trusting(mode="0666"))
    assert "is a socket anyone on this machine may connect to" in open_socket.stderr
    unused = check(tmp_path, trusting(ids="[]"))
    assert "trusted_paths has no effect" in unused.stderr
    no_group = check(tmp_path, trusting(group="no-such-group-here"))
    assert no_group.returncode == 78
    assert "smtp.socket_group: there is no group named 'no-such-group-here'" in no_group.stderr
    wrong = check(tmp_path, trusting(paths='["127.0.0.1:8024"]'))
    assert wrong.returncode == 78 and "auth.trusted_paths: '127.0.0.1:8024'" in wrong.stderr


BANGNOPI = [("Open", "open"), ("Pending", "pending"), ("Solved", "solved"), ("Closed", "closed")]
QONTAK = [
    ("New ticket", "new"),
    ("Under investigation", "open"),
    ("Urgent escalation", "open"),
    ("Resolved", "solved"),
    ("Unresolved", "closed"),
]


def status_set(statuses: list[tuple[str, str]], tickets: str = "") -> str:
    return f"[tickets]\n{tickets}\n" + "".join(
        f'[[tickets.statuses]]\nname = "{name}"\ncategory = "{category}"\n'
        for name, category in statuses
    )


@pytest.mark.parametrize(
    ("statuses", "start", "working", "merged"),
    [
        (BANGNOPI, "Open", "Open", "Closed"),
        (QONTAK, "New ticket", "Under investigation", "Unresolved"),
        ([("New", "new"), ("Done", "solved"), ("Gone", "closed")], "New", "New", "Gone"),
    ],
)
def test_any_status_set_that_starts_solves_and_closes_is_valid(statuses, start, working, merged):
    tickets = parse_config(status_set(statuses), "cfg.toml").tickets
    assert (tickets.start_status, tickets.working_status, tickets.merged) == (
        start,
        working,
        merged,
    )


@pytest.mark.parametrize(
    ("statuses", "complaint"),
    [
        ([("Waiting", "pending"), ("Solved", "solved"), ("Closed", "closed")], "'new' or 'open'"),
        ([("Open", "open"), ("Closed", "closed")], "'solved'"),
        ([("Open", "open"), ("Solved", "solved")], "'closed'"),
    ],
)
def test_a_status_set_must_start_solve_and_close(statuses, complaint):
    with pytest.raises(ConfigError) as error:
        parse_config(status_set(statuses), "cfg.toml")
    assert f"needs at least one status of category {complaint}" in str(error.value)


def test_merged_status_names_a_closed_status():
    merged = parse_config(status_set([*QONTAK, ("Closed", "closed")]), "c")
    assert merged.tickets.merged == "Closed"  # by name, though not the first closed one
    chosen = parse_config("[tickets]\nmerged_status = 'unresolved'\n", "cfg.toml")
    assert chosen.tickets.merged == "Unresolved"
    with pytest.raises(ConfigError) as error:
        parse_config("[tickets]\ncode_prefix = 'TCK'\nmerged_status = 'Solved'\n", "cfg.toml")
    assert str(error.value) == (
        "cfg.toml:3: tickets.merged_status: 'Solved' is not a closed status; "
        "one of Unresolved, Closed"
    )


def test_check_config_warns_of_links_to_the_wrong_port(tmp_path):
    moved = check(tmp_path, '[web]\nlisten = "127.0.0.1:8081"\n')
    assert moved.returncode == 0, moved.stderr
    assert (
        "warning: web.listen is '127.0.0.1:8081' but web.base_url is not set: links in mail "
        "and on pages point at http://127.0.0.1:8080." in moved.stderr
    )
    said = check(tmp_path, '[web]\nlisten = "127.0.0.1:8081"\nbase_url = "https://help.test"\n')
    assert said.returncode == 0 and "warning" not in said.stderr, said.stderr
    default = check(tmp_path, '[web]\nlisten = "127.0.0.1:8080"\n')
    assert default.returncode == 0 and "warning" not in default.stderr, default.stderr


def test_check_config_warns_of_a_route_agent_with_no_agents_block(tmp_path):
    config = """
[[routes]]
address = "help@example.test"
agents = ["Alice@example.test", "ghost@example.test"]

[[agents]]
email = "alice@example.test"
"""
    result = check(tmp_path, config)
    assert result.returncode == 0, result.stderr
    assert (
        "warning: routes[0].agents: 'ghost@example.test' has no [[agents]] block: it is "
        "assigned tickets and mailed about them but cannot sign in" in result.stderr
    )
    assert "Alice" not in result.stderr  # the case of an address does not matter


WEBHOOK = '[[webhooks]]\nname = "crm"\nurl = "https://crm.example.test/hook"\n'


def test_webhook_with_an_unknown_event_is_refused():
    text = WEBHOOK + 'secret = "s"\nevents = ["ticket.created", "ticket.exploded"]\n'
    with pytest.raises(ConfigError) as error:
        parse_config(text, "cfg.toml")
    assert "cfg.toml:5: webhooks[0].events[1]: Input should be 'ticket.created'" in str(error.value)


@pytest.mark.parametrize("secrets", ["", 'secret = "s"\nsecret_file = "/etc/mailgate/s"\n'])
def test_webhook_needs_exactly_one_secret(secrets):
    text = WEBHOOK + secrets + 'events = ["ticket.solved"]\n'
    with pytest.raises(ConfigError) as error:
        parse_config(text, "cfg.toml")
    assert "webhooks[0].secret: give exactly one of secret and secret_file" in str(error.value)


def test_webhook_names_are_unique_and_secret_files_are_read(tmp_path):
    secret = tmp_path / "crm.secret"
    secret.write_text("from-the-file\n")
    text = WEBHOOK + f'secret_file = "{secret}"\nevents = ["ticket.solved"]\n'
    (hook,) = parse_config(text, "cfg.toml").webhooks
    assert hook.secret == "from-the-file" and hook.timeout_seconds == 10.0
    with pytest.raises(ConfigError) as error:
        parse_config(text + "\n" + text, "cfg.toml")
    assert "cfg.toml:8: webhooks[1].name: 'crm' is defined twice" in str(error.value)
