"""The files in deploy/: the example config, the systemd unit and the Postfix snippets.

The example config must validate and name every key of the schema, so it cannot fall
behind ``mailgate.config.Settings``; the unit and the snippets must agree with it and
with each other (same binary, same config path, socket in the unit's directories).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from mailgate.cli import build_parser
from mailgate.config import Settings, Smtp, parse_config, parse_listen
from tests.support import need

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
EXAMPLE = DEPLOY / "mailgate.toml.example"
UNIT = DEPLOY / "mailgate.service"
POSTFIX = DEPLOY / "postfix"

# `key_file = "/abs/path"`, active or commented out.
_FILE_KEY = re.compile(r'^(#?\s*\w+_file\s*=\s*)"(/[^"]+)"', re.MULTILINE)
_HEADER = re.compile(r"^#?\s*\[\[?\s*([\w.]+)\s*\]\]?\s*$")
_KEY = re.compile(r"^#?\s*(\w+)\s*=")


def example_with_local_secrets(directory: Path) -> str:
    """The example, its ``*_file`` paths (/etc/mailgate/...) replaced by files made here."""

    def local(match: re.Match) -> str:
        path = directory / Path(match.group(2)).name
        path.write_text("test-secret-value\n")
        return f'{match.group(1)}"{path}"'

    return _FILE_KEY.sub(local, EXAMPLE.read_text())


def uncomment(text: str, table: str) -> str:
    """The example with its commented-out ``[[table]]`` block switched on."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.strip() == f"# [[{table}]]":
            inside = True
        elif inside and not line.startswith("#"):
            inside = False
        if inside and re.match(rf"^# (\[\[{table}\]\]|\w+ = )", line):
            line = line[2:]
        lines.append(line)
    return "\n".join(lines) + "\n"


def schema_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every section and key path of the schema, e.g. ``("tickets", "statuses", "name")``."""
    keys = set()
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        keys.add(path)
        nested = _model_of(field.annotation)
        if nested is not None:
            keys |= schema_keys(nested, path)
    return keys


def _model_of(annotation: object) -> type[BaseModel] | None:
    if typing.get_origin(annotation) is list:
        return _model_of(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def example_keys(text: str) -> set[tuple[str, ...]]:
    """Section and key paths in the example, commented-out ones included."""
    keys: set[tuple[str, ...]] = set()
    table: tuple[str, ...] = ()
    for line in text.splitlines():
        if header := _HEADER.match(line):
            table = tuple(header.group(1).split("."))
            keys.add(table)
        elif (key := _KEY.match(line)) and table:
            keys.add((*table, key.group(1)))
    return keys


def unit_settings(text: str) -> dict[tuple[str, str], list[str]]:
    """``(section, key)`` -> values, in order (a key may repeat)."""
    settings: dict[tuple[str, str], list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault((section, key.strip()), []).append(value.strip())
    return settings


def seconds(value: str) -> float:
    """A systemd time span of one unit: ``45s``, ``2min``, ``30``."""
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|min|)", value).groups()
    return float(number) * (60 if unit == "min" else 1)


def pipe_service() -> list[str]:
    """The master.cf entry of the snippet as Postfix reads it: one logical line, split."""
    logical: list[str] = []
    for line in (POSTFIX / "master.cf.snippet").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0].isspace():
            logical[-1] += " " + line.strip()
        else:
            logical.append(line)
    (entry,) = logical
    return entry.split()


def pipe_argv() -> list[str]:
    fields = pipe_service()
    start = next(i for i, field in enumerate(fields) if field.startswith("argv="))
    return [fields[start].removeprefix("argv="), *fields[start + 1 :]]


@pytest.fixture(scope="module")
def unit() -> dict[tuple[str, str], list[str]]:
    return unit_settings(UNIT.read_text())


def service(unit: dict, key: str) -> str:
    (value,) = unit[("Service", key)]
    return value


# (a) the example config


def test_example_config_passes_check_config(tmp_path):
    config = tmp_path / "mailgate.toml"
    config.write_text(example_with_local_secrets(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "mailgate", "--config", str(config), "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert ": OK (2 routes" in result.stdout
    assert "warning" not in result.stderr, result.stderr


def test_example_imap_block_is_valid_when_switched_on(tmp_path):
    text = uncomment(example_with_local_secrets(tmp_path), "imap")
    settings = parse_config(text, "example with [[imap]]")
    (mailbox,) = settings.imap
    assert mailbox.password == "test-secret-value"
    assert mailbox.deliver_to in {route.address for route in settings.routes}


def test_example_webhooks_block_is_valid_when_switched_on(tmp_path):
    text = uncomment(example_with_local_secrets(tmp_path), "webhooks")
    (hook,) = parse_config(text, "example with [[webhooks]]").webhooks
    assert hook.secret == "test-secret-value" and "ticket.solved" in hook.events


def test_example_names_every_key_of_the_schema():
    missing = schema_keys(Settings) - example_keys(EXAMPLE.read_text())
    assert not missing, "missing from the example: " + ", ".join(
        ".".join(path) for path in sorted(missing)
    )


def test_example_secret_files_live_in_the_configuration_directory(unit):
    directory = Path("/etc") / service(unit, "ConfigurationDirectory")
    paths = [Path(path) for _, path in _FILE_KEY.findall(EXAMPLE.read_text())]
    assert paths
    assert all(path.parent == directory for path in paths), paths


def test_example_paths_match_the_unit_directories(tmp_path, unit):
    settings = parse_config(example_with_local_secrets(tmp_path), "example")
    state = Path("/var/lib") / service(unit, "StateDirectory")
    assert service(unit, "WorkingDirectory") == str(state)
    assert settings.database.url.endswith(f"///{state}/mailgate.db")
    sockets = [parse_listen(a) for a in settings.smtp.lmtp_listen if a.startswith("unix:")]
    runtime = Path("/run") / service(unit, "RuntimeDirectory")
    assert sockets and all(Path(socket).parent == runtime for socket in sockets)


# (b) the systemd unit


def test_example_trusts_only_the_socket_postfix_alone_may_use(tmp_path, unit):
    settings = parse_config(example_with_local_secrets(tmp_path), "example")
    [trusted] = settings.auth.trusted_paths
    assert trusted in settings.smtp.lmtp_listen and isinstance(parse_listen(trusted), str)
    assert (settings.smtp.socket_mode, settings.smtp.socket_group) == ("0660", "postfix")
    assert service(unit, "SupplementaryGroups") == settings.smtp.socket_group
    assert (POSTFIX / "transport").read_text().count(f"lmtp:{trusted}") == 1


def test_unit_is_a_notify_service_with_watchdog_and_reload(unit):
    assert service(unit, "Type") == "notify"
    assert service(unit, "NotifyAccess") == "main"
    assert seconds(service(unit, "WatchdogSec")) > 0
    assert service(unit, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert service(unit, "ExecStart").split()[1:] == [
        "--config",
        "/etc/mailgate/mailgate.toml",
        "serve",
    ]


def test_unit_runs_as_its_own_user_in_its_own_directories(unit):
    assert service(unit, "User") == "mailgate"
    assert service(unit, "Group") == "mailgate"
    assert service(unit, "StateDirectory") == "mailgate"
    assert service(unit, "ConfigurationDirectory") == "mailgate"
    assert service(unit, "RuntimeDirectory") == "mailgate"


def test_unit_may_bind_port_25_and_nothing_more(unit):
    assert service(unit, "AmbientCapabilities") == "CAP_NET_BIND_SERVICE"
    assert service(unit, "CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE"
    assert service(unit, "NoNewPrivileges") == "yes"
    assert service(unit, "ProtectSystem") == "strict"


def test_unit_stop_timeout_outlasts_the_shutdown_grace(unit, tmp_path):
    settings = parse_config(example_with_local_secrets(tmp_path), "example")
    stop = seconds(service(unit, "TimeoutStopSec"))
    assert stop > Smtp().shutdown_grace_seconds
    assert stop > settings.smtp.shutdown_grace_seconds


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    need(analyze is not None, "systemd-analyze is missing (apt-get install systemd)")
    binary = Path(sys.executable).with_name("mailgate")
    assert binary.exists(), binary
    text = UNIT.read_text().replace("ExecStart=/usr/local/bin/mailgate", f"ExecStart={binary}")
    copy = tmp_path / "mailgate.service"
    copy.write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=120
    )
    # Unknown or misspelt keys are only warnings: any line about our unit fails.
    complaints = [line for line in result.stderr.splitlines() if "mailgate.service" in line]
    assert result.returncode == 0 and not complaints, result.stderr


# (c) the Postfix snippets


def test_pipe_transport_runs_deliver_as_the_daemon_would():
    fields = pipe_service()
    assert fields[:8] == ["mailgate", "unix", "-", "n", "n", "-", "10", "pipe"]
    assert "user=mailgate" in fields
    argv = pipe_argv()
    assert argv[:4] == [
        "/usr/local/bin/mailgate",
        "--config",
        "/etc/mailgate/mailgate.toml",
        "deliver",
    ]
    assert "--recipient=${recipient}" in argv
    assert "--sender=${sender}" in argv


def test_pipe_transport_argv_parses_with_an_empty_sender():
    argv = pipe_argv()
    expanded = [
        arg.replace("${sender}", "").replace("${recipient}", "support@example.com")
        for arg in argv[1:]
    ]
    args = build_parser().parse_args(expanded)
    assert (args.command, args.sender, args.recipient) == ("deliver", "", ["support@example.com"])


def test_pipe_transport_uses_the_units_binary_and_config(unit):
    assert service(unit, "ExecStart").split()[:3] == pipe_argv()[:3]


def test_postfix_accepts_the_snippets(tmp_path):
    postconf = shutil.which("postconf")
    need(postconf is not None, "Postfix is not installed (apt-get install postfix)")
    shutil.copy(POSTFIX / "main.cf.snippet", tmp_path / "main.cf")
    shutil.copy(POSTFIX / "master.cf.snippet", tmp_path / "master.cf")
    shutil.copy(POSTFIX / "transport", tmp_path / "transport")

    def run(*argv: str) -> str:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and not result.stderr, result.stderr
        return result.stdout

    # postconf warns about parameters it does not know: a misspelt name shows here.
    assert "relay_domains = example.com" in run(postconf, "-c", str(tmp_path), "-n")
    (entry,) = run(postconf, "-c", str(tmp_path), "-M").splitlines()
    assert entry.split()[:8] == pipe_service()[:8]
    table = f"hash:{tmp_path / 'transport'}"
    run(shutil.which("postmap") or "postmap", "-c", str(tmp_path), table)
    lookup = run(
        shutil.which("postmap") or "postmap", "-c", str(tmp_path), "-q", "example.com", table
    )
    assert lookup.strip() == "lmtp:unix:/run/mailgate/lmtp"
    checks = f"regexp:{POSTFIX / 'header_checks'}"
    forged = "Authentication-Results: mx.example.com; dkim=pass header.d=example.com"
    postmap = shutil.which("postmap") or "postmap"
    assert run(postmap, "-c", str(tmp_path), "-q", forged, checks).strip() == "IGNORE"
    assert "header_checks = regexp:/etc/postfix/header_checks" in run(
        postconf, "-c", str(tmp_path), "-n"
    )
