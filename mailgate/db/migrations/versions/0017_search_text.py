"""messages.search_text: the HTML part's words are searched too; both databases
split addresses and host names into words alike

Mail with a plain and an HTML part kept only the plain part's text, so a word only
in the HTML could not be found. ``search_text`` holds the HTML's text of such mail
(filled in here for the mail stored before), and the full-text index covers subject,
text and search_text. PostgreSQL's parser kept "dewi@nordic.test" and
"www.nordic.test" as single tokens where SQLite's splits them into words; the
PostgreSQL index now splits at "@", ".", "/" and ":" as well, so a search for
"nordic" finds them on both.

Revision ID: 0017_search_text
Revises: 0016_live_drafts
Create Date: 2026-12-02 12:30:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mailgate.pipeline.html import to_text
from mailgate.pipeline.parse import MAX_TEXT_CHARS

revision: str = "0017_search_text"
down_revision: str | Sequence[str] | None = "0016_live_drafts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500

TRIGGERS = ("insert", "delete", "update")


def _sqlite_fts(columns: list[str]) -> list[str]:
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    return [
        f"CREATE VIRTUAL TABLE messages_fts USING fts5({names}, content='messages', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
        f"INSERT INTO messages_fts(rowid, {names}) VALUES (new.id, {new}); END",
        "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
        f"INSERT INTO messages_fts(messages_fts, rowid, {names}) "
        f"VALUES ('delete', old.id, {old}); END",
        f"CREATE TRIGGER messages_fts_update AFTER UPDATE OF {names} ON messages BEGIN "
        f"INSERT INTO messages_fts(messages_fts, rowid, {names}) "
        f"VALUES ('delete', old.id, {old}); "
        f"INSERT INTO messages_fts(rowid, {names}) VALUES (new.id, {new}); END",
        "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
    ]


def _postgres_fts(document: str) -> list[str]:
    return [
        "ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
        f"(to_tsvector('simple', {document})) STORED",
        "CREATE INDEX ix_messages_search_vector ON messages USING gin (search_vector)",
    ]


OLD_DOCUMENT = "coalesce(subject, '') || ' ' || coalesce(text, '')"
NEW_DOCUMENT = (
    "translate(coalesce(subject, '') || ' ' || coalesce(text, '') || ' ' || "
    "coalesce(search_text, ''), '@./:', '    ')"
)


def _drop_fts(postgres: bool) -> None:
    if postgres:
        op.execute("DROP INDEX ix_messages_search_vector")
        op.execute("ALTER TABLE messages DROP COLUMN search_vector")
        return
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER messages_fts_{trigger}")
    op.execute("DROP TABLE messages_fts")


def _fill_search_text() -> None:
    """The HTML's text of the mail stored before that has a plain text too."""
    connection = op.get_bind()
    messages = sa.table(
        "messages",
        sa.column("id", sa.Integer),
        sa.column("text", sa.Text),
        sa.column("html", sa.Text),
        sa.column("search_text", sa.Text),
    )
    after = 0
    while True:
        rows = connection.execute(
            sa.select(messages.c.id, messages.c.html)
            .where(messages.c.id > after, messages.c.html.is_not(None), messages.c.text != "")
            .order_by(messages.c.id)
            .limit(BATCH)
        ).all()
        for message_id, html in rows:
            words = to_text(html[: 2 * MAX_TEXT_CHARS])[:MAX_TEXT_CHARS].replace("\0", "")
            connection.execute(
                messages.update().where(messages.c.id == message_id).values(search_text=words)
            )
        if len(rows) < BATCH:
            return
        after = rows[-1][0]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # In place (no batch copy) on SQLite: the FTS triggers belong to the table.
    op.add_column(
        "messages", sa.Column("search_text", sa.Text(), server_default="", nullable=False)
    )
    _drop_fts(postgres)
    _fill_search_text()
    statements = (
        _postgres_fts(NEW_DOCUMENT) if postgres else _sqlite_fts(["subject", "text", "search_text"])
    )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    _drop_fts(postgres)
    op.drop_column("messages", "search_text")
    statements = _postgres_fts(OLD_DOCUMENT) if postgres else _sqlite_fts(["subject", "text"])
    for statement in statements:
        op.execute(statement)
