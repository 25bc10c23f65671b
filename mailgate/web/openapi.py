"""The OpenAPI 3.1 document of ``/api/v1``, written as data and served as JSON.

Kept by hand beside the handlers; tests check that it is a valid OpenAPI document,
that every ``/api`` route is in it, that real answers match its schemas, and
(schemathesis) that the server accepts what it describes and refuses the rest. So
the served document names this server's statuses and agents, and states the
patterns the handlers enforce, from the same constants.
"""

from __future__ import annotations

from aiohttp import web

from mailgate import __version__
from mailgate.actions.canned_text import BODY_PATTERN, MAX_BODY, NAME_PATTERN, PLACEHOLDERS
from mailgate.actions.values import MAX_TAG, MAX_TAGS, PRIORITIES, TAG_PATTERN
from mailgate.config import Settings
from mailgate.numbers import ID_MAX
from mailgate.web.api import CURSOR_PATTERN, MAX_LIMIT
from mailgate.web.api_write import MESSAGE_TEXT
from mailgate.web.customer_history import CATEGORIES
from mailgate.web.keys import RUNTIME

NO_NUL = "^[^\\x00]*$"  # what a URL may carry (a NUL is a 400)
CURSOR = f"^{CURSOR_PATTERN.pattern}$"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict:
    meaning = {
        400: "Malformed request: not JSON, a NUL character in the URL, a bad limit or cursor",
        401: "No or unknown bearer token",
        404: "No such ticket (or attachment on it; or, to merge into or split off, no "
        "such ticket or message on it), canned reply, or customer (no tickets of that address)",
        409: "The ticket was merged into another (act on that one); for not-spam, it is "
        "not held back as spam; a merge into itself or a merged ticket; a split of a "
        "message not a customer's, or the ticket's only one; a canned reply's name is "
        "taken in its scope",
        422: "A value that cannot be used: unknown status, agent, priority, sla filter, "
        "a malformed tag, an unknown placeholder",
    }
    return {str(status): _json(_ref("Error"), meaning[status]) for status in statuses}


def _object(properties: dict, optional: tuple[str, ...] = (), **extra: object) -> dict:
    """An object schema whose properties are all required but the ``optional`` ones."""
    required = [name for name in properties if name not in optional]
    return {"type": "object", "required": required, "properties": properties, **extra}


_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_TEXT_LIST = {"type": "array", "items": {"type": "string"}}
_PRIORITY = {"enum": list(PRIORITIES)}
_NOTHING = {"not": {}}  # no value is acceptable (e.g. no agents are configured)


def _choices(names: list[str], description: str) -> dict:
    """One of ``names``; the server also takes them in any case."""
    return {"enum": names, "description": f"{description} (any case)"} if names else _NOTHING


def _schemas(settings: Settings | None) -> dict:
    statuses = [status.name for status in settings.tickets.statuses] if settings else []
    agents = sorted({agent.email.lower() for agent in settings.agents}) if settings else []
    status = _choices(statuses, "a configured status") if settings else {"type": "string"}
    agent = _choices(agents, "a configured agent") if settings else {"type": "string"}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
        "Ticket": _object(
            {
                "code": {"type": "string", "examples": ["TCK-20250725-7PXA"]},
                "subject": {"type": "string"},
                "status": {"type": "string"},
                "priority": _PRIORITY,
                "queue": {"type": "string"},
                "assignee": {"type": ["string", "null"]},
                "customer": {
                    "type": "object",
                    "required": ["name", "email"],
                    "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
                },
                "tags": _TEXT_LIST,
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
                "first_response_at": _NULLABLE_TIME,
                "solved_at": _NULLABLE_TIME,
                "message_count": {"type": "integer", "minimum": 0},
                "spam": {
                    "type": "boolean",
                    "description": "held back as spam: unacknowledged until released",
                },
                "satisfaction": {"oneOf": [{"type": "null"}, _ref("Satisfaction")]},
                "sla": {"anyOf": [_ref("Sla"), {"type": "null"}]},
            },
            optional=("first_response_at", "solved_at"),
        ),
        "Satisfaction": {
            "description": "The customer's rating from the solved mail's links; it can "
            "change until the ticket is closed.",
            "type": "object",
            "required": ["score", "comment", "at"],
            "properties": {
                "score": {"enum": ["good", "bad"]},
                "comment": {"type": "string"},
                "at": {"type": "string", "format": "date-time"},
            },
        },
        "Sla": _object(
            {
                "policy": {"type": "string", "description": "The [[sla]] policy that applies"},
                "first_response_due_at": _NULLABLE_TIME,
                "next_response_due_at": _NULLABLE_TIME,
                "resolution_due_at": _NULLABLE_TIME,
                "breached": {
                    "type": "array",
                    "items": {"enum": ["first_response", "next_response", "resolution"]},
                },
            },
            description=(
                "Due times of the targets not met yet (null: met, no such target, or the "
                "ticket is solved), counted in the route's business hours; while the "
                "ticket is pending they are projected as if its clock restarted now. "
                "breached: the targets missed so far."
            ),
        ),
        "TicketList": {
            "type": "object",
            "required": ["tickets", "next_cursor"],
            "properties": {
                "tickets": {"type": "array", "items": _ref("Ticket")},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "Customer": _object(
            {
                "email": {"type": "string"},
                "name": {"type": "string", "description": "the name of their latest ticket"},
                "first_contact_at": {"type": "string", "format": "date-time"},
                "ticket_count": {"type": "integer", "minimum": 1},
                "counts": _object(
                    {category: {"type": "integer", "minimum": 0} for category in CATEGORIES},
                    description="tickets by status category",
                ),
                "tickets": {"type": "array", "items": _ref("Ticket")},
                "next_cursor": {"type": ["string", "null"]},
            },
            description="A customer and their tickets, newest first; tickets merged into "
            "another or held back as spam are not counted.",
        ),
        "Attachment": {
            "type": "object",
            "required": ["id", "url", "filename", "content_type", "size", "sha256"],
            "properties": {
                "id": {"type": "integer"},
                "url": {
                    "type": "string",
                    "description": "where its bytes are (getAttachment), relative to the server",
                },
                "filename": {"type": "string"},
                "content_type": {"type": "string"},
                "size": {"type": "integer", "minimum": 0},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
        },
        "Message": _object(
            {
                "id": {"type": "integer"},
                "kind": {"enum": ["customer", "agent", "note", "system"]},
                "from": {"type": "string"},
                "to": _TEXT_LIST,
                "cc": _TEXT_LIST,
                "subject": {"type": "string"},
                "text": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "message_id": {"type": "string"},
                "auto_reason": {"type": ["string", "null"]},
                "attachments": {"type": "array", "items": _ref("Attachment")},
                "spam_check": {
                    "oneOf": [_ref("SpamCheck"), {"type": "null"}],
                    "description": "the spam check of customer mail; null when none was asked",
                },
            },
            optional=("auto_reason", "spam_check"),
        ),
        "SpamCheck": _object(
            {
                "result": {"enum": ["spam", "ham", "failed"]},
                "source": {"type": "string", "examples": ["rspamd"]},
                "action": {"type": "string", "examples": ["reject", "no action"]},
                "score": {"type": ["number", "null"]},
                "required_score": {"type": ["number", "null"]},
                "symbols": _TEXT_LIST,
                "reason": {"type": "string", "description": "why a failed check failed"},
            }
        ),
        "TicketDetail": {
            "allOf": [
                _ref("Ticket"),
                {
                    "type": "object",
                    "required": ["messages"],
                    "properties": {"messages": {"type": "array", "items": _ref("Message")}},
                },
            ]
        },
        "NewMessage": {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", "text", "agent"],
            "properties": {
                "kind": {
                    "enum": ["agent", "note"],
                    "description": "agent: mailed to the customer and CCs; note: internal",
                },
                "text": {"type": "string", "minLength": 1, "pattern": MESSAGE_TEXT},
                "agent": agent,
            },
        },
        "TicketChange": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "status": status,
                "priority": _PRIORITY,
                "assignee": {"anyOf": [agent, {"type": "null"}], "description": "null: nobody"},
                "tags": {
                    "type": "array",
                    "maxItems": MAX_TAGS,
                    "items": {"type": "string", "pattern": TAG_PATTERN},
                    "description": f"the new set: words of up to {MAX_TAG} characters, at most "
                    f"{MAX_TAGS} tags on a ticket",
                },
            },
        },
        **_canned_schemas(settings, agent),
        "MergeRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["into"],
            "properties": {
                "into": {
                    "type": "string",
                    "minLength": 1,
                    "pattern": NO_NUL,
                    "description": "the code of the ticket to merge this one into",
                }
            },
        },
        "SplitRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["message_id"],
            "properties": {
                "message_id": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": ID_MAX,
                    "description": "the id of a customer message of this ticket (not its only one)",
                }
            },
        },
        "TicketChanged": {
            "allOf": [
                _ref("Ticket"),
                {
                    "type": "object",
                    "required": ["changes"],
                    "properties": {"changes": _TEXT_LIST},
                },
            ]
        },
    }


def _canned_schemas(settings: Settings | None, agent: dict) -> dict:
    queues = sorted({route.queue for route in settings.routes}) if settings else []
    queue = _choices(queues, "a configured queue") if settings else {"type": "string"}
    name = {"type": "string", "pattern": NAME_PATTERN, "description": "kept in lower case"}
    body = {
        "type": "string",
        "maxLength": MAX_BODY,
        "pattern": BODY_PATTERN,
        "description": "plain text with placeholders: "
        + ", ".join(f"{{{{ {name} }}}}" for name in PLACEHOLDERS),
    }
    scoped = {"name": name, "body": body}
    return {
        "CannedReply": _object(
            {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "body": {"type": "string"},
                "scope": {"enum": ["shared", "personal"]},
                "queue": {"type": ["string", "null"], "description": "shared: the queue"},
                "owner": {"type": ["string", "null"], "description": "personal: the agent"},
                "author": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
            }
        ),
        "CannedReplyList": _object(
            {"canned_replies": {"type": "array", "items": _ref("CannedReply")}}
        ),
        "NewCannedReply": {
            "description": "Shared by the agents of a queue, or personal to one agent; "
            "names are unique in their scope (409)",
            "oneOf": [
                _object({**scoped, "queue": queue}, additionalProperties=False),
                _object({**scoped, "owner": agent}, additionalProperties=False),
            ],
        },
        "CannedReplyChange": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": scoped,
        },
        "RenderedCannedReply": _object(
            {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "text": {"type": "string", "description": "the placeholders filled in"},
            }
        ),
    }


_CANNED_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": ID_MAX},
}


def _canned_paths(settings: Settings | None) -> dict:
    agents = sorted({agent.email.lower() for agent in settings.agents}) if settings else []
    agent = _choices(agents, "a configured agent") if settings else {"type": "string"}
    return {
        "/api/v1/canned-replies": {
            "get": {
                "operationId": "listCannedReplies",
                "summary": "Canned replies, by name; filtered by queue or owner",
                "parameters": [
                    _query("queue", "the shared replies of this queue"),
                    _query("owner", "the personal replies of this agent"),
                ],
                "responses": {
                    "200": _json(_ref("CannedReplyList"), "The replies"),
                    **_errors(400, 401),
                },
            },
            "post": {
                "operationId": "createCannedReply",
                "summary": "A new canned reply, shared by a queue or personal to an agent",
                "requestBody": {"required": True, **_json(_ref("NewCannedReply"), "The reply")},
                "responses": {
                    "201": _json(_ref("CannedReply"), "The stored reply"),
                    **_errors(400, 401, 409, 422),
                },
            },
        },
        "/api/v1/canned-replies/{id}": {
            "parameters": [_CANNED_ID],
            "get": {
                "operationId": "getCannedReply",
                "summary": "One canned reply",
                "responses": {
                    "200": _json(_ref("CannedReply"), "The reply"),
                    **_errors(400, 401, 404),
                },
            },
            "patch": {
                "operationId": "updateCannedReply",
                "summary": "Change a canned reply's name or text (absent keys stay)",
                "requestBody": {
                    "required": True,
                    **_json(_ref("CannedReplyChange"), "The changes"),
                },
                "responses": {
                    "200": _json(_ref("CannedReply"), "The reply after the change"),
                    **_errors(400, 401, 404, 409, 422),
                },
            },
            "delete": {
                "operationId": "deleteCannedReply",
                "summary": "Delete a canned reply",
                "responses": {"204": {"description": "Deleted"}, **_errors(400, 401, 404)},
            },
        },
        "/api/v1/tickets/{code}/canned-replies/{id}/rendered": {
            "parameters": [_CODE, _CANNED_ID],
            "get": {
                "operationId": "renderCannedReply",
                "summary": "A canned reply filled in for a ticket, as the agent would send it; "
                "post the text as a reply to send it",
                "parameters": [
                    {
                        "name": "agent",
                        "in": "query",
                        "required": True,
                        "description": "who sends it: their own replies and the shared ones "
                        "of the ticket's queue are theirs to use (else 404)",
                        "schema": agent,
                    }
                ],
                "responses": {
                    "200": _json(_ref("RenderedCannedReply"), "The filled-in text"),
                    **_errors(400, 401, 404, 422),
                },
            },
        },
    }


_CODE = {
    "name": "code",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": NO_NUL},
}


def _query(name: str, description: str, schema: dict | None = None) -> dict:
    schema = schema or {"type": "string", "pattern": NO_NUL}
    return {"name": name, "in": "query", "description": description, "schema": schema}


def _filters(settings: Settings | None) -> list[dict]:
    """The filters checked like the values of a change (empty: any, else a 422)."""
    statuses = [status.name for status in settings.tickets.statuses] if settings else []
    status = {"enum": [*statuses, ""]} if settings else {"type": "string", "pattern": NO_NUL}
    tag = {"type": "string", "pattern": f"^$|{TAG_PATTERN}"}
    return [
        _query("status", "a configured status (any case); empty: any", status),
        _query("priority", "a priority (any case); empty: any", {"enum": [*PRIORITIES, ""]}),
        _query("tag", "tickets with this tag; empty: any", tag),
        _query(
            "sla",
            "overdue: a target's due time has passed; due_today: due today ([tickets] "
            "timezone). As the SLA timer last stored it ([tickets] sla_check_seconds)",
            {"enum": ["overdue", "due_today"]},
        ),
    ]


def _list_filters(settings: Settings | None) -> list[dict]:
    """Every filter of the ticket list (and of its CSV export)."""
    return [
        *_filters(settings),
        _query("queue", "queue name"),
        _query("assignee", "an agent's address; empty or none: unassigned"),
        _query("customer", "the customer's address"),
        _query(
            "q",
            "the inbox's search: tickets with a message holding every word, each as a word"
            " prefix (print finds printer), in its subject or text, HTML part included;"
            " a ticket code; the customer's address; or a domain (nordic.test or"
            " @nordic.test: every customer there, subdomains included)",
        ),
        _query(
            "spam",
            "true: only the tickets held back as spam; false (default): the others",
            {"enum": ["true", "false"]},
        ),
    ]


def _action(operation: str, summary: str, body: str, answer: tuple[str, str, str]) -> dict:
    """A POST on a ticket with a JSON ``body`` schema; ``answer``: status, schema, text."""
    status, schema, text = answer
    return {
        "parameters": [_CODE],
        "post": {
            "operationId": operation,
            "summary": summary,
            "requestBody": {"required": True, **_json(_ref(body), body)},
            "responses": {
                status: _json(_ref(schema), text),
                **_errors(400, 401, 404, 409, 422),
            },
        },
    }


def _paths(settings: Settings | None) -> dict:
    return {
        "/api/v1/tickets": {
            "get": {
                "operationId": "listTickets",
                "summary": "Tickets, newest first, filtered; follow next_cursor until it is null",
                "parameters": [
                    *_list_filters(settings),
                    _query(
                        "limit",
                        "page size",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    ),
                    _query(
                        "cursor",
                        "next_cursor of the previous page, passed back as it is (opaque)",
                        {"type": "string", "pattern": CURSOR},
                    ),
                ],
                "responses": {
                    "200": _json(_ref("TicketList"), "A page"),
                    **_errors(400, 401, 422),
                },
            }
        },
        "/api/v1/tickets.csv": {
            "get": {
                "operationId": "exportTickets",
                "summary": "Every ticket the list's filters select, newest first, as CSV "
                "(UTF-8, a header row; streamed, any number of tickets). Cells that start "
                "with = + - @ get a leading apostrophe, so spreadsheets do not run them.",
                "parameters": _list_filters(settings),
                "responses": {
                    "200": {
                        "description": "The CSV",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **_errors(400, 401, 422),
                },
            }
        },
        "/api/v1/tickets/{code}": {
            "parameters": [_CODE],
            "get": {
                "operationId": "getTicket",
                "summary": "One ticket with its whole thread",
                "responses": {
                    "200": _json(_ref("TicketDetail"), "The ticket"),
                    **_errors(400, 401, 404),
                },
            },
            "patch": {
                "operationId": "updateTicket",
                "summary": "Change status, priority, assignee and tags (absent keys stay)",
                "requestBody": {"required": True, **_json(_ref("TicketChange"), "The changes")},
                "responses": {
                    "200": _json(_ref("TicketChanged"), "The ticket after the change"),
                    **_errors(400, 401, 404, 409, 422),
                },
            },
        },
        "/api/v1/tickets/{code}/messages": {
            "parameters": [_CODE],
            "post": {
                "operationId": "addMessage",
                "summary": "An agent reply (mailed to the customer) or an internal note",
                "requestBody": {"required": True, **_json(_ref("NewMessage"), "The message")},
                "responses": {
                    "201": _json(_ref("Message"), "The stored message"),
                    **_errors(400, 401, 404, 409, 422),
                },
            },
        },
        "/api/v1/tickets/{code}/attachments/{id}": {
            "parameters": [
                _CODE,
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "description": "an attachment id from the ticket's messages",
                    "schema": {"type": "integer", "minimum": 0},
                },
            ],
            "get": {
                "operationId": "getAttachment",
                "summary": "An attachment's bytes, with its type and (as Content-Disposition: "
                "attachment) its name; only through the ticket its message is on",
                "responses": {
                    "200": {
                        "description": "The bytes",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **_errors(400, 401, 404),
                },
            },
        },
        "/api/v1/tickets/{code}/merge": _action(
            "mergeTicket",
            "Merge this ticket into another: its messages, people and tags move there, and "
            "it gets the merged status",
            "MergeRequest",
            ("200", "Ticket", "The ticket it was merged into"),
        ),
        "/api/v1/tickets/{code}/split": _action(
            "splitTicket",
            "Move a customer message off into a new ticket of the same queue",
            "SplitRequest",
            ("201", "Ticket", "The new ticket (its URL in Location)"),
        ),
        "/api/v1/tickets/{code}/not-spam": {
            "parameters": [_CODE],
            "post": {
                "operationId": "releaseSpam",
                "summary": "Not spam: release a ticket held back as spam and acknowledge it",
                "responses": {
                    "200": _json(_ref("Ticket"), "The released ticket"),
                    **_errors(401, 404, 409, 422),
                },
            },
        },
        **_canned_paths(settings),
        "/api/v1/customers/{address}": {
            "parameters": [
                {
                    "name": "address",
                    "in": "path",
                    "required": True,
                    "description": "the customer's address (URL-encoded)",
                    "schema": {"type": "string", "pattern": NO_NUL},
                }
            ],
            "get": {
                "operationId": "getCustomer",
                "summary": "A customer's name, first contact, counts and tickets (paged)",
                "parameters": [
                    _query(
                        "limit",
                        "page size",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    ),
                    _query(
                        "cursor",
                        "next_cursor of the previous page, passed back as it is (opaque)",
                        {"type": "string", "pattern": CURSOR},
                    ),
                ],
                "responses": {
                    "200": _json(_ref("Customer"), "The customer"),
                    **_errors(400, 401, 404),
                },
            },
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document (no token needed)",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "This OpenAPI 3.1 document")},
            }
        },
    }


def document(settings: Settings | None = None) -> dict:
    """The document; with ``settings``, naming their statuses and agents."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mailgate API",
            "version": __version__,
            "description": "Tickets of the mailgate helpdesk gateway. Every error is JSON: "
            '{"error": {"code", "message"}}. A method a path does not have gets 405 '
            "with an Allow header naming those it has.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(settings),
        "components": {
            "schemas": _schemas(settings),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document(request.app[RUNTIME].settings))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", serve)
