"""Decisions and how an item resolves: independent votes first, then a tie-break or an adjudicator.

    decision_id = record_decision(conn, row, "ana", "approve", ...)   # inside the store's transaction
    settle(conn, item_id)           # status, decisions needed, version shown: from the counted votes

The rule: docs/review.md#votes-versions-and-how-an-item-resolves-resolvepy. In short: until an item
has the votes asked for at enqueue, everyone is shown the original and votes on it alone
(`independent`); a split after that goes to a third annotator (`tiebreak`) or an adjudicator
(`adjudication`), who see every version side by side with who voted for it; the version (or reject)
with a strict majority wins, and an adjudicator's ruling settles it.
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
PHASES = ("independent", "tiebreak", "adjudication")


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


def phase_of(status: str, decided: int, base_needed: int) -> str:
    """What a vote on an item in this state is: 'independent' while the item still lacks the votes
    asked for at enqueue, 'tiebreak' on a split pending item, 'adjudication' on a disputed one;
    '' for a resolved item (no vote possible)."""
    if status == "disputed":
        return "adjudication"
    if status != "pending":
        return ""
    return "independent" if decided < base_needed else "tiebreak"


def ruling_phase(phase: str, is_adjudicator: bool) -> str:
    """The phase a vote is logged with: an adjudicator who takes a split item rules on it
    ('adjudication', not 'tiebreak'); the page says the same (`review_app.review_page`)."""
    return "adjudication" if phase == "tiebreak" and is_adjudicator else phase


def view_of(status: str, decided: int, base_needed: int, revision: int) -> str:
    """A token for what an annotator is shown: the same for every independent vote on an item (they
    all see the original alone), otherwise tied to the item's revision (the votes in view)."""
    phase = phase_of(status, decided, base_needed)
    return "original" if phase == "independent" else f"{phase or status}@{revision}"


class DecisionError(Exception):
    """A decision that cannot be recorded; the store turns it into its `Conflict`."""


class StaleView(DecisionError):
    """The item changed between the annotator opening it and voting; the vote is refused."""


class SlotsTaken(DecisionError):
    """Every open slot of the item is leased to others (e.g. someone took theirs back with undo)."""


def role_of(conn: Connection, annotator: str) -> str:
    return conn.execute(select(roles.c.role).where(roles.c.annotator == annotator)).scalar() or "annotator"


def record_decision(conn: Connection, row: Any, annotator: str, action: str, *, label_name: str,
                    version: str | None, view: str | None, label: str | None, text: str | None,
                    labels: dict[str, str] | None, reason: str, now: float, others_leasing: int,
                    note: str = "") -> int:
    """Append one decision on the (locked) item `row` and its vote; returns the decision id.

    `version`: for approve, the version voted for (None: the original); for edit, the version edited
    (None: the original). `view`: the `Item.view` the annotator was shown; a different one now refuses
    the vote (`StaleView`). Independent votes may only approve the original or make an edit of it."""
    item_id = row["id"]
    if action not in ACTIONS:
        fail(f"unknown action '{action}' (choose from: {', '.join(ACTIONS)})")
    phase = phase_of(row["status"], row["decided"], row["base_needed"])
    is_adjudicator = role_of(conn, annotator) == ADJUDICATOR
    if phase == "adjudication":
        if not is_adjudicator:
            raise DecisionError(f"item {item_id}: disputed; it waits for an annotator with the "
                                f"'{ADJUDICATOR}' role")
        if others_leasing:
            raise DecisionError(f"item {item_id}: claimed by another adjudicator")
    elif not phase:
        raise DecisionError(f"item {item_id}: already decided ({row['status']})")
    current = view_of(row["status"], row["decided"], row["base_needed"], row["revision"])
    if view is not None and view != current:
        raise StaleView(f"item {item_id}: this item changed since you opened it (a vote was cast or undone); "
                        "your vote was not counted; look at it again")
    if phase != "adjudication" and row["decided"] + others_leasing >= row["needed"]:
        raise SlotsTaken(f"item {item_id}: claimed by another annotator")
    phase = ruling_phase(phase, is_adjudicator)
    base = version or row["original_version"]
    if phase == "independent" and base != row["original_version"]:
        raise DecisionError(f"item {item_id}: still waiting for independent votes; approve the original or "
                            "make your own edit")
    shown = version_of(conn, row, base)
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
        text_before=shown.text, text_after=new_text, reason=reason, note=note, created_at=now,
        version_shown=row["original_version"] if phase == "independent" else shown.id, version=voted,
        adjudication=int(phase == "adjudication"), phase=phase,
    )).inserted_primary_key[0]
    conn.execute(votes.insert().values(item_id=item_id, annotator=annotator, decision_id=decision_id))
    settle(conn, item_id)
    return int(decision_id)


def latest_vote(conn: Connection, annotator: str) -> tuple[int, int] | None:
    """(item id, decision id) of `annotator`'s latest vote that still counts: what an undo removes."""
    last = conn.execute(
        select(votes.c.item_id, votes.c.decision_id).where(votes.c.annotator == annotator)
        .order_by(votes.c.decision_id.desc()).limit(1)
    ).first()
    return None if last is None else (int(last[0]), int(last[1]))


def remove_vote(conn: Connection, annotator: str, now: float) -> int | None:
    """Undo `annotator`'s latest vote that still counts (an 'undo' row is appended); the item id."""
    last = latest_vote(conn, annotator)
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
    """Recompute an item's derived state (status, needed, decided, version shown, revision) from its
    counted votes."""
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
            winner, needed = rulings[-1], max(needed, len(counted))
        elif votes_for_top * 2 > len(counted):
            winner = top
        elif len(counted) < 3:
            needed = 3  # a split: a third annotator (or an adjudicator) breaks the tie
        else:
            status, needed = "disputed", len(counted)
    if winner == "reject":
        status = "rejected"
    elif winner is not None:
        status = "approved" if winner == row.original_version else "edited"
    # Until it resolves the item shows the original (independent review); then the winning version.
    version, by = row.original_version, None
    if winner not in (None, "reject", row.original_version):
        version = winner
        by = next((d.id for d in reversed(counted) if d.action == "edit" and d.version == winner), None)
        if by is None:  # its proposer was undone; the first proposal of that content
            by = conn.execute(select(decisions.c.id).where(
                decisions.c.item_id == item_id, decisions.c.action == "edit", decisions.c.version == winner,
            ).order_by(decisions.c.id).limit(1)).scalar()
    conn.execute(update(items).where(items.c.id == item_id).values(
        status=status, decided=len(counted), needed=needed, version=version, version_decision=by,
        revision=items.c.revision + 1))
