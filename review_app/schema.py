"""The review store's tables and its numbered migrations.

Tables:
    items      one row per queued record: the record as JSON plus the columns the queue filters and
               sorts on, and derived state (status, how many decisions it needs and has, live leases).
    decisions  the audit log: append-only, one row per approve / reject / edit / undo.
    votes      derived: which decisions currently count (an undo deletes its target's vote; the
               decision itself stays in the log).
    leases     who is looking at which item until when; an expired lease returns the item to the queue.

`migrate(conn)` applies every migration newer than the database's recorded version, each in the
caller's transaction, and records it in `schema_migrations`. Add a migration by appending to
`MIGRATIONS`; never edit one that has shipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("applied_at", Float, nullable=False),
)

items = Table(
    "items", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(64), nullable=False, unique=True),
    Column("task", String(100), nullable=False),
    Column("lang", String(16), nullable=False),
    Column("label", String(200), nullable=False, default=""),
    Column("flags", String(1000), nullable=False, default=","),  # ",dedup,language," (failed validators)
    Column("template_id", String(200), nullable=False, default=""),
    Column("strategy", String(200), nullable=False, default=""),
    Column("doubt", Float, nullable=False, default=0.5),
    Column("rand_key", Float, nullable=False, default=0.0),  # seeded hash: the random (audit) order
    Column("record_json", Text, nullable=False),
    Column("status", String(16), nullable=False, default="pending"),
    Column("needed", Integer, nullable=False, default=1),
    Column("decided", Integer, nullable=False, default=0),
    Column("leased", Integer, nullable=False, default=0),
    Column("enqueued_at", Float, nullable=False),
    Column("source_file", String(1000), nullable=False, default=""),
)

decisions = Table(
    "decisions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("annotator", String(200), nullable=False),
    Column("action", String(16), nullable=False),  # approve | reject | edit | undo
    Column("label_before", String(200), nullable=False, default=""),
    Column("label_after", String(200), nullable=False, default=""),
    Column("labels_after_json", Text, nullable=False, default="{}"),
    Column("text_before", Text, nullable=False, default=""),
    Column("text_after", Text, nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("undoes", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
)

votes = Table(
    "votes", metadata,
    Column("item_id", Integer, ForeignKey("items.id"), primary_key=True),
    Column("annotator", String(200), primary_key=True),
    Column("decision_id", Integer, ForeignKey("decisions.id"), nullable=False, unique=True),
)

leases = Table(
    "leases", metadata,
    Column("item_id", Integer, ForeignKey("items.id"), primary_key=True),
    Column("annotator", String(200), primary_key=True),
    Column("expires_at", Float, nullable=False),
)


def _m001_tables(conn: Connection) -> None:
    for table in (items, decisions, votes, leases):
        table.create(conn)


def _m002_queue_indexes(conn: Connection) -> None:
    # The claim query walks pending items in queue order and stops at the first free one, so these
    # indexes make "next item" cost O(skipped rows), not O(queue).
    # Plain DDL (not Index objects, which would attach to the tables and be re-created by migration 1).
    for ddl in (
        "CREATE INDEX ix_items_doubt_queue ON items (status, doubt DESC, id)",
        "CREATE INDEX ix_items_random_queue ON items (status, rand_key, id)",
        "CREATE INDEX ix_decisions_item ON decisions (item_id, id)",
        "CREATE INDEX ix_decisions_annotator ON decisions (annotator, id)",
        "CREATE INDEX ix_votes_annotator ON votes (annotator, decision_id)",
        "CREATE INDEX ix_leases_expiry ON leases (expires_at)",
        "CREATE INDEX ix_leases_annotator ON leases (annotator)",
    ):
        conn.exec_driver_sql(ddl)


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "items, decisions, votes, leases", _m001_tables),
    (2, "queue-order and lookup indexes", _m002_queue_indexes),
]


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_migrations"):
        return 0
    versions = conn.execute(select(schema_migrations.c.version)).scalars().all()
    return max(versions, default=0)


def migrate(conn: Connection) -> list[int]:
    """Apply pending migrations in order; returns the versions applied (empty when up to date)."""
    if not inspect(conn).has_table("schema_migrations"):
        schema_migrations.create(conn)
    done = current_version(conn)
    applied = []
    for version, name, step in MIGRATIONS:
        if version <= done:
            continue
        step(conn)
        conn.execute(schema_migrations.insert().values(version=version, name=name, applied_at=time.time()))
        applied.append(version)
    return applied
