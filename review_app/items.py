"""An item as the app and the export see it: the original record, the version it shows, its phase.

    item = store.claim("ana")
    item.phase    # 'independent' (shown the original alone), 'tiebreak', 'adjudication', '' when resolved
    item.view     # pass back with the vote: store.decide(item.id, "ana", "approve", view=item.view)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from core.records import Record
from review_app.resolve import phase_of, view_of
from review_app.schema import decisions, items


@dataclass(frozen=True)
class Item:
    """A queued item as it stands: the original `record` and the `version` it shows (`text`, `labels`):
    the original until it resolves, then the winning version (proposed by `proposed_by`)."""

    id: int
    record: Record
    status: str
    doubt: float
    needed: int
    decided: int
    label: str  # the generator's claimed label (what the queue filters on)
    flags: tuple[str, ...]
    version: str = ""
    text: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    proposed_by: str = ""  # who proposed the version shown; "" for the original
    base_needed: int = 1  # independent decisions asked for at enqueue
    revision: int = 0

    @property
    def is_original(self) -> bool:
        return not self.proposed_by

    @property
    def phase(self) -> str:
        return phase_of(self.status, self.decided, self.base_needed)

    @property
    def view(self) -> str:
        return view_of(self.status, self.decided, self.base_needed, self.revision)


_shown = decisions.alias("shown")
# Items with the content of the version they show (NULL proposal: the original record).
ITEMS = select(items, _shown.c.text_after.label("shown_text"), _shown.c.labels_after_json.label("shown_labels"),
               _shown.c.annotator.label("shown_by")).outerjoin(_shown, _shown.c.id == items.c.version_decision)


def to_item(row: Any) -> Item:
    record = Record.model_validate_json(row["record_json"])
    if row["shown_by"] is None:
        text, labels, by = record.text, dict(record.labels), ""
    else:
        text, labels, by = row["shown_text"], json.loads(row["shown_labels"]), row["shown_by"]
    return Item(id=row["id"], record=record, status=row["status"], doubt=row["doubt"], needed=row["needed"],
                decided=row["decided"], label=row["label"], flags=tuple(f for f in row["flags"].split(",") if f),
                version=row["version"], text=text, labels=labels, proposed_by=by, base_needed=row["base_needed"],
                revision=row["revision"])
