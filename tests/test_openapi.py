"""The OpenAPI document: a valid OpenAPI 3.1 document that names every /api route."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from mailgate.actions.values import TAG_PATTERN
from mailgate.config import LoadedConfig, parse_config
from mailgate.db.session import create_engine
from mailgate.runtime import RuntimeConfig
from mailgate.web.app import init_app
from mailgate.web.context import WebContext
from mailgate.web.openapi import document
from mailgate.work import pipeline_deps
from tests.support import MailgateProcess, api_call

SETTINGS = parse_config(
    '[web]\nsecret_key = "k"\n[[agents]]\nemail = "Alice@Example.test"\nname = "Alice"\n', "test"
)


def test_the_document_is_valid_openapi():
    validate(document())
    validate(document(SETTINGS))


def test_the_document_states_the_rules_the_server_enforces():
    schemas = document(SETTINGS)["components"]["schemas"]
    change, new = schemas["TicketChange"]["properties"], schemas["NewMessage"]["properties"]
    assert change["status"]["enum"] == [s.name for s in SETTINGS.tickets.statuses]
    assert change["assignee"]["anyOf"] == [
        {"enum": ["alice@example.test"], "description": "a configured agent (any case)"},
        {"type": "null"},
    ]
    assert change["tags"]["maxItems"] == 50 and change["tags"]["items"]["pattern"] == TAG_PATTERN
    assert new["agent"]["enum"] == ["alice@example.test"] and new["text"]["minLength"] == 1
    parameters = document()["paths"]["/api/v1/tickets"]["get"]["parameters"]
    [cursor] = [p["schema"] for p in parameters if p["name"] == "cursor"]
    assert cursor == {"type": "string", "pattern": "^[0-9a-f]{1,15}$"}


def test_the_list_filters_are_documented_with_their_422():
    listing = document(SETTINGS)["paths"]["/api/v1/tickets"]["get"]
    schemas = {p["name"]: p["schema"] for p in listing["parameters"]}
    assert schemas["status"]["enum"] == [*(s.name for s in SETTINGS.tickets.statuses), ""]
    assert schemas["priority"]["enum"] == ["low", "normal", "high", "urgent", ""]
    assert schemas["tag"]["pattern"] == f"^$|{TAG_PATTERN}"
    assert "422" in listing["responses"]


async def test_every_api_route_is_documented(tmp_path):
    settings = parse_config('[web]\nsecret_key = "k"\n', "test")
    runtime = RuntimeConfig(LoadedConfig(settings, None))
    deps = pipeline_deps(runtime)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/unused.db")
    app = init_app(WebContext(engine, runtime, deps.signer, deps.composer))
    registered = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource.canonical.startswith("/api/") and route.method != "HEAD"
    }
    documented = {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method != "parameters"
    }
    await engine.dispose()
    assert registered == documented


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_document_is_served_without_a_token(setup):
    process = MailgateProcess(setup)
    await process.start()
    try:
        status, served = await api_call(setup, "/api/v1/openapi.json", token=None)
    finally:
        await process.stop()
    assert status == 200 and served == document(parse_config(setup.render(), "test"))
