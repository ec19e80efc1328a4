"""Alembic's environment for the review store: migrations run on the connection the store hands over.

    ReviewStore(db)                      # applies what is missing (review_app.schema.migrate)
    alembic -c review_app/alembic.ini revision -m "what changes"   # write a new migration (developers)

`review_app.schema.migrate` puts its open connection (inside the store's transaction, on Postgres
under an advisory lock) into `config.attributes["connection"]`; there is no offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context

from core.errors import fail

connection = context.config.attributes.get("connection")
if connection is None:
    fail("review_app migrations run through the store: open it with ReviewStore(db) "
         "(or `python -m review_app stats --db DB`); offline SQL scripts are not supported")
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():  # the store's own transaction: all migrations or none
    context.run_migrations()
