"""Alembic environment for the state store.

Run only through ``syncd.state.db.migrate``, which hands over an open connection (already
holding the migration lock) in ``config.attributes["connection"]``. No alembic.ini and no
logging configuration: the daemon's logging set-up stays in charge.

To write a new migration: copy ``versions/0001_initial.py`` to ``versions/NNNN_<name>.py``,
set ``revision = "NNNN"`` and ``down_revision`` to the previous head, use explicit ``op`` calls,
and change ``syncd/state/schema.py`` to match (``tests/e2e/test_state_db.py`` compares them).
"""

from alembic import context

from syncd.state.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("syncd migrations run through syncd.state.db.migrate(), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER needs table rebuilds
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
