"""Alembic environment: migrations run on the connection (and inside the transaction) that
``expbook.store.migrate`` passes in ``config.attributes["connection"]``."""

from alembic import context

from expbook.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
