"""Alembic environment: mailgate always hands in an open connection (see db/migrate.py)."""

from alembic import context

from mailgate.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
