"""The review store's schema as it is on main at 56e76f7: the hand-written migrations 1-3, frozen.

    migrate(conn)   # builds a database exactly as today's store does (tests/review_app/test_alembic.py)

Kept verbatim (this docstring aside) so the Alembic upgrade test starts from a database made by the
schema that ships today, not from a re-creation of it. Never edit it.
"""

from __future__ import annotations

import json
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
    func,
    inspect,
    select,
    update,
)

from core.records import content_version

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("applied_at", Float, nullable=False),
)


# Each table's columns as migration 1 created them. Migration 1 builds its tables from these alone
# (in a metadata of its own), so columns added by later migrations are never created twice.
def _items_v1() -> list[Column]:
    return [
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
    ]


def _decisions_v1() -> list[Column]:
    return [
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
    ]


def _votes_v1() -> list[Column]:
    return [
        Column("item_id", Integer, ForeignKey("items.id"), primary_key=True),
        Column("annotator", String(200), primary_key=True),
        Column("decision_id", Integer, ForeignKey("decisions.id"), nullable=False, unique=True),
    ]


def _leases_v1() -> list[Column]:
    return [
        Column("item_id", Integer, ForeignKey("items.id"), primary_key=True),
        Column("annotator", String(200), primary_key=True),
        Column("expires_at", Float, nullable=False),
    ]


# The live tables: v1 plus what later migrations added (keep the two in step).
items = Table(
    "items", metadata, *_items_v1(),
    # migration 3: versions. `version` is the content hash of what the item shows now (the original,
    # or the latest edit that counts, proposed by decision `version_decision`); `base_needed` is the
    # number of decisions asked for at enqueue (`needed` may rise to 3 on disagreement and fall back).
    Column("original_version", String(32), nullable=False, default=""),
    Column("version", String(32), nullable=False, default=""),
    Column("version_decision", Integer, nullable=True),
    Column("base_needed", Integer, nullable=False, default=1),
)

decisions = Table(
    "decisions", metadata, *_decisions_v1(),
    # migration 3: the version the annotator was shown, the version the vote is for (approve: the one
    # shown; edit: the new one; reject and undo: ""), and whether it was an adjudicator's ruling.
    Column("version_shown", String(32), nullable=False, default=""),
    Column("version", String(32), nullable=False, default=""),
    Column("adjudication", Integer, nullable=False, default=0),
)

votes = Table("votes", metadata, *_votes_v1())
leases = Table("leases", metadata, *_leases_v1())

roles = Table(
    "roles", metadata,  # migration 3: who may adjudicate ties
    Column("annotator", String(200), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("granted_at", Float, nullable=False),
)


def _m001_tables(conn: Connection) -> None:
    v1 = MetaData()
    for name, columns in (("items", _items_v1), ("decisions", _decisions_v1), ("votes", _votes_v1),
                          ("leases", _leases_v1)):
        Table(name, v1, *columns()).create(conn)


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


def _m003_versions(conn: Connection) -> None:
    # Plain DDL, as it stood when this migration shipped; the same statements run on SQLite and Postgres.
    for ddl in (
        "ALTER TABLE items ADD COLUMN original_version VARCHAR(32) NOT NULL DEFAULT ''",
        "ALTER TABLE items ADD COLUMN version VARCHAR(32) NOT NULL DEFAULT ''",
        "ALTER TABLE items ADD COLUMN version_decision INTEGER",
        "ALTER TABLE items ADD COLUMN base_needed INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE decisions ADD COLUMN version_shown VARCHAR(32) NOT NULL DEFAULT ''",
        "ALTER TABLE decisions ADD COLUMN version VARCHAR(32) NOT NULL DEFAULT ''",
        "ALTER TABLE decisions ADD COLUMN adjudication INTEGER NOT NULL DEFAULT 0",
        "CREATE TABLE roles (annotator VARCHAR(200) NOT NULL PRIMARY KEY, role VARCHAR(32) NOT NULL, "
        "granted_at FLOAT NOT NULL)",
        # needed only ever rose from 2 to 3 on disagreement: 3 means 2 were asked for.
        "UPDATE items SET base_needed = CASE WHEN needed > 2 THEN 2 ELSE needed END",
    ):
        conn.exec_driver_sql(ddl)
    # Backfill versions: the original's hash, and for older decisions the version their stored
    # content (text_after, labels_after_json) amounts to; the version shown was not recorded then.
    for item_id, record_json in conn.execute(select(items.c.id, items.c.record_json)).all():
        record = json.loads(record_json)
        original = content_version(record.get("text", ""), record.get("labels") or {})
        conn.execute(update(items).where(items.c.id == item_id)
                     .values(original_version=original, version=original))
    kept = conn.execute(select(decisions.c.id, decisions.c.text_after, decisions.c.labels_after_json)
                        .where(decisions.c.action.in_(("approve", "edit")))).all()
    for decision_id, text, labels_json in kept:
        conn.execute(update(decisions).where(decisions.c.id == decision_id)
                     .values(version=content_version(text, json.loads(labels_json or "{}"))))
    # An item with a counted edit shows that edit (the latest one) from now on.
    latest = (select(votes.c.item_id, func.max(decisions.c.id).label("decision_id"))
              .join(decisions, decisions.c.id == votes.c.decision_id)
              .where(decisions.c.action == "edit").group_by(votes.c.item_id))
    for item_id, decision_id in conn.execute(latest).all():
        version = conn.execute(select(decisions.c.version).where(decisions.c.id == decision_id)).scalar_one()
        conn.execute(update(items).where(items.c.id == item_id)
                     .values(version=version, version_decision=decision_id))


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "items, decisions, votes, leases", _m001_tables),
    (2, "queue-order and lookup indexes", _m002_queue_indexes),
    (3, "votes against versions, adjudicator roles", _m003_versions),
]


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_migrations"):
        return 0
    versions = conn.execute(select(schema_migrations.c.version)).scalars().all()
    return max(versions, default=0)


def migrate(conn: Connection) -> list[int]:
    """Apply pending migrations in order; returns the versions applied (empty when up to date)."""
    if conn.dialect.name == "postgresql":
        # Two processes opening a fresh database at once: the second waits, then finds it up to date.
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(726172)")
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
