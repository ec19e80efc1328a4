"""an annotator's free-text note on a vote, apart from its reason.

Revision ID: 0005
Revises: 0004

- `decisions.note`: what the annotator wrote in the note box ("not sure, 12 or 15?"); `reason` keeps
  the reason chosen from the list (or the app's description of an edit), so reject-reason counts are
  not mixed with free text. Older votes keep their reason as it was ("near-duplicate: same as item 1")
  and get an empty note.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column("note", sa.Text, nullable=False, server_default=""))
