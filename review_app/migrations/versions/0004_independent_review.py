"""independent double review, lazy lease expiry, stale-vote check; Alembic takes over from the old runner.

Revision ID: 0004
Revises: 0003

- `decisions.phase`: 'independent' (cast before the item had its votes, shown the original),
  'tiebreak' (cast on a split, with the versions in view) or 'adjudication'; '' for undo rows.
  Older votes are backfilled: per item, the first `base_needed` counted non-ruling votes that were shown
  the original (or whose shown version was not recorded) are independent, the rest tie-breaks.
- `items.lease_until`: the latest expiry among the item's leases, so the claim query treats an item
  whose leases all ran out as free without a global clean-up first (review_app.queue).
- `items.revision`: bumped on every vote and undo; a vote cast on an older view of a split or
  disputed item is refused (review_app.resolve).
- Pending and disputed items show the original again (independent review); resolved items keep
  their resolved version.
- `schema_migrations`, the old hand-written runner's table, is dropped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_items = sa.table("items", sa.column("id", sa.Integer), sa.column("status", sa.String),
                  sa.column("base_needed", sa.Integer), sa.column("original_version", sa.String),
                  sa.column("version", sa.String), sa.column("version_decision", sa.Integer),
                  sa.column("leased", sa.Integer), sa.column("lease_until", sa.Float))
_decisions = sa.table("decisions", sa.column("id", sa.Integer), sa.column("item_id", sa.Integer),
                      sa.column("action", sa.String), sa.column("version_shown", sa.String),
                      sa.column("adjudication", sa.Integer), sa.column("phase", sa.String))
_votes = sa.table("votes", sa.column("item_id", sa.Integer), sa.column("decision_id", sa.Integer))
_leases = sa.table("leases", sa.column("item_id", sa.Integer), sa.column("expires_at", sa.Float))


def upgrade() -> None:
    conn = op.get_bind()
    op.add_column("items", sa.Column("lease_until", sa.Float, nullable=False, server_default=sa.text("0")))
    op.add_column("items", sa.Column("revision", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.add_column("decisions", sa.Column("phase", sa.String(16), nullable=False, server_default=""))

    # Leases: the count and the latest expiry on the item row.
    for item_id, n, until in conn.execute(sa.select(_leases.c.item_id, sa.func.count(), sa.func.max(_leases.c.expires_at))
                                          .group_by(_leases.c.item_id)).all():
        conn.execute(sa.update(_items).where(_items.c.id == item_id).values(leased=n, lease_until=until))

    # Phases of the votes already cast.
    items = {r.id: r for r in conn.execute(sa.select(_items.c.id, _items.c.base_needed, _items.c.original_version))}
    counted = set(conn.execute(sa.select(_votes.c.decision_id)).scalars())
    independent_left = {i: r.base_needed for i, r in items.items()}
    rows = conn.execute(sa.select(_decisions.c.id, _decisions.c.item_id, _decisions.c.action, _decisions.c.version_shown,
                                  _decisions.c.adjudication).order_by(_decisions.c.id)).all()
    for d in rows:
        if d.action == "undo":
            continue
        saw_original = d.version_shown in ("", items[d.item_id].original_version)
        if d.adjudication:
            phase = "adjudication"
        elif saw_original and (d.id not in counted or independent_left[d.item_id] > 0):
            phase = "independent"
            if d.id in counted:
                independent_left[d.item_id] -= 1
        else:
            phase = "tiebreak"
        conn.execute(sa.update(_decisions).where(_decisions.c.id == d.id).values(phase=phase))

    # Independent review: an item still waiting for votes shows the original.
    conn.execute(sa.update(_items).where(_items.c.status.in_(("pending", "disputed")))
                 .values(version=_items.c.original_version, version_decision=None))
    op.execute("DROP TABLE IF EXISTS schema_migrations")
