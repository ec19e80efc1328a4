"""queue-order and lookup indexes (the hand-written migration 2, as it shipped).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The claim query walks pending items in queue order and stops at the first free one, so these
    # indexes make "next item" cost O(skipped rows), not O(queue).
    for ddl in (
        "CREATE INDEX ix_items_doubt_queue ON items (status, doubt DESC, id)",
        "CREATE INDEX ix_items_random_queue ON items (status, rand_key, id)",
        "CREATE INDEX ix_decisions_item ON decisions (item_id, id)",
        "CREATE INDEX ix_decisions_annotator ON decisions (annotator, id)",
        "CREATE INDEX ix_votes_annotator ON votes (annotator, decision_id)",
        "CREATE INDEX ix_leases_expiry ON leases (expires_at)",
        "CREATE INDEX ix_leases_annotator ON leases (annotator)",
    ):
        op.execute(ddl)
