"""Decisions and how an item resolves: every vote is for the version its annotator was shown.

    decision_id = record_decision(conn, row, "ana", "approve", ...)   # inside the store's transaction
    settle(conn, item_id)           # status, decisions needed, version shown: from the counted votes

The rule (strict majority over versions; a third vote, then an adjudicator, when votes split; undo
recomputes): docs/review.md#votes-versions-and-how-an-item-resolves-resolvepy
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update

from core.errors import fail
from core.records import Record, content_version
from review_app.schema import decisions, items, roles, votes

ACTIONS = ("approve", "reject", "edit")
ADJUDICATOR = "adjudicator"
ROLES = ("annotator", ADJUDICATOR)
STATUSES = ("pending", "disputed", "approved", "edited", "rejected")


@dataclass(frozen=True)
class Version:
    """One version of an item: what an annotator sees and votes on."""

    id: str
    text: str
    labels: dict[str, str]
    proposed_by: str = ""  # "" for the original record
    decision_id: int | None = None  # the edit that proposed it


def original_version(record: Record) -> Version:
    return Version(content_version(record.text, dict(record.labels)), record.text, dict(record.labels))


def version_of(conn: Connection, row: Any, version_id: str) -> Version | None:
    """The content of `version_id` of the item in `row` (None: no such version of this item)."""
    record = Record.model_validate_json(row["record_json"])
    if version_id == row["original_version"]:
        return original_version(record)
    found = conn.execute(
        select(decisions.c.id, decisions.c.annotator, decisions.c.text_after, decisions.c.labels_after_json)
        .where(decisions.c.item_id == row["id"], decisions.c.action == "edit", decisions.c.version == version_id)
        .order_by(decisions.c.id).limit(1)
    ).first()
    if found is None:
        return None
    return Version(version_id, found.text_after, json.loads(found.labels_after_json), found.annotator, found.id)


class DecisionError(Exception):
    """A decision that cannot be recorded; the store turns it into its `Conflict`."""


def role_of(conn: Connection, annotator: str) -> str:
    return conn.execute(select(roles.c.role).where(roles.c.annotator == annotator)).scalar() or "annotator"


def record_decision(conn: Connection, row: Any, annotator: str, action: str, *, label_name: str,
                    version: str | None, label: str | None, text: str | None, labels: dict[str, str] | None,
                    reason: str, now: float, others_leasing: int) -> int:
    """Append one decision on the (locked) item `row` and its vote; returns the decision id.

    `version` is the version the annotator was shown (None: the one the item shows now)."""
    item_id = row["id"]
    if action not in ACTIONS:
        fail(f"unknown action '{action}' (choose from: {', '.join(ACTIONS)})")
    adjudication = row["status"] == "disputed"
    if adjudication:
        if role_of(conn, annotator) != ADJUDICATOR:
            raise DecisionError(f"item {item_id}: disputed; it waits for an annotator with the "
                                f"'{ADJUDICATOR}' role")
        if others_leasing:
            raise DecisionError(f"item {item_id}: claimed by another adjudicator")
    elif row["status"] != "pending":
        raise DecisionError(f"item {item_id}: already decided ({row['status']})")
    elif row["decided"] + others_leasing >= row["needed"]:
        raise DecisionError(f"item {item_id}: claimed by another annotator")
    shown = version_of(conn, row, version or row["version"])
    if shown is None:
        raise DecisionError(f"item {item_id}: no version '{version}' of this item")
    new_text, new_labels = shown.text, dict(shown.labels)
    if action == "edit":
        new_labels.update(labels or {})
        if label is not None:
            new_labels[label_name] = label
        new_text = shown.text if text is None else text
        if not new_text.strip():
            fail(f"item {item_id}: the edited text is empty; write the corrected text or reject the item")
        if not str(new_labels.get(label_name, "")).strip():
            fail(f"item {item_id}: the edited {label_name} is empty; choose one")
        if new_text == shown.text and new_labels == shown.labels:
            action = "approve"  # an edit that changes nothing is an approval of what was shown
    voted = "" if action == "reject" else content_version(new_text, new_labels)
    decision_id = conn.execute(decisions.insert().values(
        item_id=item_id, annotator=annotator, action=action,
        label_before=shown.labels.get(label_name, row["label"]), label_after=new_labels.get(label_name, row["label"]),
        labels_after_json=json.dumps(new_labels, ensure_ascii=False),
        text_before=shown.text, text_after=new_text, reason=reason, created_at=now,
        version_shown=shown.id, version=voted, adjudication=int(adjudication),
    )).inserted_primary_key[0]
    conn.execute(votes.insert().values(item_id=item_id, annotator=annotator, decision_id=decision_id))
    settle(conn, item_id)
    return int(decision_id)


def remove_vote(conn: Connection, annotator: str, now: float) -> int | None:
    """Undo `annotator`'s latest vote that still counts (an 'undo' row is appended); the item id."""
    last = conn.execute(
        select(votes.c.item_id, votes.c.decision_id).where(votes.c.annotator == annotator)
        .order_by(votes.c.decision_id.desc()).limit(1)
    ).first()
    if last is None:
        return None
    item_id, target = last
    conn.execute(select(items.c.id).where(items.c.id == item_id).with_for_update())  # Postgres: one writer
    conn.execute(delete(votes).where(votes.c.decision_id == target))
    conn.execute(decisions.insert().values(item_id=item_id, annotator=annotator, action="undo",
                                           undoes=target, reason="undo", created_at=now))
    settle(conn, item_id)
    return int(item_id)


def settle(conn: Connection, item_id: int) -> None:
    """Recompute an item's derived state (status, needed, decided, version shown) from its counted votes."""
    row = conn.execute(select(items.c.base_needed, items.c.original_version).where(items.c.id == item_id)).one()
    counted = conn.execute(
        select(decisions.c.id, decisions.c.action, decisions.c.version, decisions.c.adjudication)
        .join(votes, votes.c.decision_id == decisions.c.id)
        .where(votes.c.item_id == item_id).order_by(decisions.c.id)
    ).all()
    needed, status, winner = row.base_needed, "pending", None
    outcomes = ["reject" if d.action == "reject" else d.version for d in counted]
    rulings = [o for o, d in zip(outcomes, counted, strict=True) if d.adjudication]
    if len(counted) >= needed:
        top, votes_for_top = Counter(outcomes).most_common(1)[0]
        if rulings:
            winner, needed = rulings[-1], max(needed, 3)
        elif votes_for_top * 2 > len(counted):
            winner = top
        elif len(counted) < 3:
            needed = 3  # a disagreement: a third annotator decides
        else:
            status, needed = "disputed", len(counted)
    if winner == "reject":
        status = "rejected"
    elif winner is not None:
        status = "approved" if winner == row.original_version else "edited"
    # The version the item shows: the winner once resolved, else the latest counted edit that changed it.
    edits = [d for d in counted if d.action == "edit" and d.version != row.original_version]
    version, by = row.original_version, None
    if winner not in (None, "reject"):
        version = winner
        by = next((d.id for d in reversed(edits) if d.version == winner), None)
        if by is None and winner != row.original_version:  # its proposer was undone; the first proposal
            by = conn.execute(select(decisions.c.id).where(
                decisions.c.item_id == item_id, decisions.c.action == "edit", decisions.c.version == winner,
            ).order_by(decisions.c.id).limit(1)).scalar()
    elif edits:
        version, by = edits[-1].version, edits[-1].id
    conn.execute(update(items).where(items.c.id == item_id).values(
        status=status, decided=len(counted), needed=needed, version=version, version_decision=by))
