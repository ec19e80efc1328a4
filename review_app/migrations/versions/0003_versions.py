"""votes against versions, adjudicator roles (the hand-written migration 3, as it shipped).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from core.records import content_version

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The tables as this migration sees them (never the live definitions in review_app.schema, which move on).
_items = sa.table("items", sa.column("id", sa.Integer), sa.column("record_json", sa.Text),
                  sa.column("original_version", sa.String), sa.column("version", sa.String),
                  sa.column("version_decision", sa.Integer))
_decisions = sa.table("decisions", sa.column("id", sa.Integer), sa.column("action", sa.String),
                      sa.column("text_after", sa.Text), sa.column("labels_after_json", sa.Text),
                      sa.column("version", sa.String))
_votes = sa.table("votes", sa.column("item_id", sa.Integer), sa.column("decision_id", sa.Integer))


def upgrade() -> None:
    conn = op.get_bind()
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
        op.execute(ddl)
    # Backfill versions: the original's hash, and for older decisions the version their stored
    # content (text_after, labels_after_json) amounts to; the version shown was not recorded then.
    for item_id, record_json in conn.execute(sa.select(_items.c.id, _items.c.record_json)).all():
        record = json.loads(record_json)
        original = content_version(record.get("text", ""), record.get("labels") or {})
        conn.execute(sa.update(_items).where(_items.c.id == item_id).values(original_version=original,
                                                                             version=original))
    kept = conn.execute(sa.select(_decisions.c.id, _decisions.c.text_after, _decisions.c.labels_after_json)
                        .where(_decisions.c.action.in_(("approve", "edit")))).all()
    for decision_id, text, labels_json in kept:
        conn.execute(sa.update(_decisions).where(_decisions.c.id == decision_id)
                     .values(version=content_version(text, json.loads(labels_json or "{}"))))
    # An item with a counted edit shows that edit (the latest one).
    latest = (sa.select(_votes.c.item_id, sa.func.max(_decisions.c.id).label("decision_id"))
              .join(_decisions, _decisions.c.id == _votes.c.decision_id)
              .where(_decisions.c.action == "edit").group_by(_votes.c.item_id))
    for item_id, decision_id in conn.execute(latest).all():
        version = conn.execute(sa.select(_decisions.c.version).where(_decisions.c.id == decision_id)).scalar_one()
        conn.execute(sa.update(_items).where(_items.c.id == item_id)
                     .values(version=version, version_decision=decision_id))
