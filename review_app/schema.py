"""The review store's tables (items, decisions, votes, leases, roles) and their migrations (Alembic).

    applied = migrate(conn)   # the Alembic revisions the database lacks, in the caller's transaction

Migrations live in `review_app/migrations/versions/` (0001-0003 are the hand-written migrations 1-3
as they shipped; a database they made is stamped and upgraded). Add one with
`alembic -c review_app/alembic.ini revision -m "what changes"`, set `HEAD` to it, and keep the live
tables below in step; never edit a migration that has shipped.
The tables and what they hold: docs/review.md#design-review_appschemapy
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

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
    text,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
HEAD = "0005"  # the newest revision in migrations/versions (a test checks the two agree)
# The old runner's `schema_migrations.version` -> the Alembic revision that stands for it.
LEGACY_REVISIONS = {1: "0001", 2: "0002", 3: "0003"}
_LOCK_KEY = 726172  # Postgres advisory lock: two processes opening a fresh database do not race

metadata = MetaData()

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
    # Leases on the row itself: how many, and when the last one runs out. A claim treats the item as
    # free once `lease_until` has passed (review_app.queue), so expiry needs no global clean-up.
    Column("leased", Integer, nullable=False, default=0),
    Column("enqueued_at", Float, nullable=False),
    Column("source_file", String(1000), nullable=False, default=""),
    # 0003: `version` is the content hash of what the item shows (the original until it resolves, then
    # the winner, proposed by decision `version_decision`); `base_needed` is the number of decisions
    # asked for at enqueue (`needed` may rise to 3 on disagreement and fall back).
    Column("original_version", String(32), nullable=False, default=""),
    Column("version", String(32), nullable=False, default=""),
    Column("version_decision", Integer, nullable=True),
    Column("base_needed", Integer, nullable=False, default=1),
    # 0004
    Column("lease_until", Float, nullable=False, default=0.0),
    Column("revision", Integer, nullable=False, default=0),  # bumped by every vote and undo
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
    # 0003: the version the annotator was shown, the version the vote is for (approve: the one chosen;
    # edit: the new one; reject and undo: ""), and whether it was an adjudicator's ruling.
    Column("version_shown", String(32), nullable=False, default=""),
    Column("version", String(32), nullable=False, default=""),
    Column("adjudication", Integer, nullable=False, default=0),
    # 0004: independent | tiebreak | adjudication ('' for undo rows)
    Column("phase", String(16), nullable=False, default=""),
    # 0005: the annotator's free-text note, kept apart from the reason
    Column("note", Text, nullable=False, default=""),
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

roles = Table(
    "roles", metadata,  # 0003: who may adjudicate
    Column("annotator", String(200), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("granted_at", Float, nullable=False),
)


def current_revision(conn: Connection) -> str | None:
    """The database's Alembic revision; for a database the old runner made, the revision standing for
    its newest hand-written migration; None for an empty database."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if "schema_migrations" in tables:
        done = conn.execute(text("SELECT max(version) FROM schema_migrations")).scalar()
        return LEGACY_REVISIONS.get(int(done)) if done else None
    return None


@cache
def _config():  # -> alembic.config.Config; imported lazily: an up-to-date database never needs Alembic
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def migrate(conn: Connection) -> list[str]:
    """Bring the database to `HEAD` inside the caller's transaction; returns the revisions applied."""
    if conn.dialect.name == "postgresql":
        # Two processes opening a fresh database at once: the second waits, then finds it up to date.
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
    has_alembic = inspect(conn).has_table("alembic_version")
    start = current_revision(conn)
    if start == HEAD and has_alembic:
        return []
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _config()
    cfg.attributes["connection"] = conn
    try:
        if start is not None and not has_alembic:
            command.stamp(cfg, start)  # a database made by the hand-written runner: where it stands
        command.upgrade(cfg, "head")
    finally:
        cfg.attributes.pop("connection", None)
    script = ScriptDirectory.from_config(cfg)
    chain = [r.revision for r in script.walk_revisions(base="base", head="heads")][::-1]
    return chain[chain.index(start) + 1:] if start in chain else chain
