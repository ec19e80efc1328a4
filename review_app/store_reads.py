"""The review store's reads: items, each version with its votes, the audit log, counts and progress.

    store.get(item_id)                   # an Item as it stands
    store.versions(item_id)              # what a tie-breaker or the lead compares: votes, reasons, notes
    store.progress("ana", since=midnight) # open items, my decisions and the team's since a time
    store.last_vote("ana")               # what an undo would reopen, and who else voted on it

Nothing here writes. `ReviewStore` (review_app.store) inherits these methods; they read through its
`_read()` transactions, so a database that went away is the same one-line error as for a write.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, and_, func, select

from core.errors import fail
from review_app.items import ITEMS, Item, to_item
from review_app.resolve import latest_vote, version_of
from review_app.schema import decisions, items, votes

OPEN = ("pending", "disputed")


def _counted(item_id: int):  # -> a Select of the decisions that count on one item, oldest first
    return (select(decisions).join(votes, votes.c.decision_id == decisions.c.id)
            .where(votes.c.item_id == item_id).order_by(decisions.c.id))


class StoreReads:
    """Read-only queries of `ReviewStore`; `_read` is the store's read transaction."""

    def _read(self) -> AbstractContextManager[Connection]:  # pragma: no cover - ReviewStore's
        raise NotImplementedError

    def _item(self, conn: Connection, item_id: int) -> Item:
        return to_item(conn.execute(ITEMS.where(items.c.id == item_id)).mappings().one())

    def get(self, item_id: int) -> Item:
        with self._read() as conn:
            row = conn.execute(ITEMS.where(items.c.id == item_id)).mappings().first()
        if row is None:
            fail(f"item {item_id}: no such item")
        return to_item(row)

    def list_items(self, *, status: str | None = None, lang: str | None = None, label: str | None = None,
                   flag: str | None = None, limit: int | None = None) -> list[Item]:
        query = ITEMS.order_by(items.c.id)
        conds = []
        if status:
            conds.append(items.c.status == status)
        if lang:
            conds.append(items.c.lang == lang)
        if label:
            conds.append(items.c.label == label)
        if flag:
            conds.append(items.c.flags.contains(f",{flag},", autoescape=True))
        if conds:
            query = query.where(and_(*conds))
        if limit:
            query = query.limit(limit)
        with self._read() as conn:
            return [to_item(r) for r in conn.execute(query).mappings()]

    def final_state(self, item_id: int) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
        """(text, labels, decisions that count) of an item: its resolved version once decided (what
        export writes), the version it shows while pending."""
        item = self.get(item_id)
        with self._read() as conn:
            counted = conn.execute(_counted(item_id)).mappings().all()
        return item.text, item.labels, [dict(r) for r in counted]

    def versions(self, item_id: int) -> list[dict[str, Any]]:
        """Every version of an item with its counted votes (what a tie-breaker or the lead compares):
        version id, title ('original' or 'edit by bob'), text, labels, proposed_by, votes (annotator
        names) and ballots (per vote: annotator, action, phase, reason, note), oldest first; then the
        rejects as version 'reject' (title 'reject')."""
        with self._read() as conn:
            row = conn.execute(select(items).where(items.c.id == item_id)).mappings().first()
            if row is None:
                fail(f"item {item_id}: no such item")
            proposed = conn.execute(select(decisions.c.version).where(
                decisions.c.item_id == item_id, decisions.c.action == "edit").order_by(decisions.c.id)).scalars()
            counted = conn.execute(_counted(item_id)).mappings().all()
            ids = list(dict.fromkeys([row["original_version"], *proposed]))
            out = []
            for vid in ids:
                v = version_of(conn, row, vid)
                ballots = [_ballot(d) for d in counted if d["action"] != "reject" and d["version"] == vid]
                if vid != row["original_version"] and not ballots:
                    continue  # an edit nobody votes for any more (undone): nothing to choose
                out.append({"version": vid, "title": "original" if not v.proposed_by else f"edit by {v.proposed_by}",
                            "text": v.text, "labels": v.labels, "proposed_by": v.proposed_by,
                            "votes": [b["annotator"] for b in ballots], "ballots": ballots})
        rejects = [_ballot(d) for d in counted if d["action"] == "reject"]
        if rejects:
            out.append({"version": "reject", "title": "reject", "text": "", "labels": {}, "proposed_by": "",
                        "votes": [b["annotator"] for b in rejects], "ballots": rejects})
        return out

    def decision_log(self, *, annotator: str | None = None) -> list[dict[str, Any]]:
        """The whole audit log (undo rows included), oldest first."""
        query = select(decisions).order_by(decisions.c.id)
        if annotator:
            query = query.where(decisions.c.annotator == annotator)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def counted_decisions(self) -> list[dict[str, Any]]:
        """Decisions that currently count, joined with the item columns the dashboard groups by."""
        query = (select(decisions, items.c.lang, items.c.task, items.c.template_id, items.c.strategy,
                        items.c.label.label("claimed_label"), items.c.record_json, items.c.status)
                 .join(votes, votes.c.decision_id == decisions.c.id).join(items, items.c.id == decisions.c.item_id)
                 .order_by(decisions.c.id))
        with self._read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def counts(self, column: str) -> dict[str, int]:
        col = items.c[column]
        with self._read() as conn:
            return {str(k): int(v) for k, v in conn.execute(select(col, func.count()).group_by(col).order_by(col))}

    def item_outcomes(self) -> list[dict[str, Any]]:
        """Per item: id, status, template_id, strategy, task, needed and base_needed (what acceptance
        and the count of items that needed a third vote are computed over)."""
        query = select(items.c.id, items.c.status, items.c.template_id, items.c.strategy, items.c.task,
                       items.c.needed, items.c.base_needed).order_by(items.c.id)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def filter_values(self) -> dict[str, list[str]]:
        """Languages, labels and validator flags present in the queue (for the app's filters)."""
        with self._read() as conn:
            langs = conn.execute(select(items.c.lang).distinct().order_by(items.c.lang)).scalars().all()
            labels = conn.execute(select(items.c.label).distinct().order_by(items.c.label)).scalars().all()
            flag_sets = conn.execute(select(items.c.flags).distinct()).scalars().all()
        flags = sorted({f for s in flag_sets for f in s.split(",") if f})
        return {"lang": list(langs), "label": list(labels), "flag": flags}

    def progress(self, annotator: str, *, since: float) -> dict[str, int]:
        """How far the review is: `open` items (pending or disputed), of them `disputed`, the `total`;
        the decisions that still count made since `since` by `annotator` (`mine`) and by everyone
        (`team`, by `annotators` people)."""
        counted_since = (select(decisions.c.annotator, func.count()).join(votes, votes.c.decision_id == decisions.c.id)
                         .where(decisions.c.created_at >= since).group_by(decisions.c.annotator))
        with self._read() as conn:
            status = dict(conn.execute(select(items.c.status, func.count()).group_by(items.c.status)).all())
            per_person = dict(conn.execute(counted_since).all())
        return {"open": sum(int(status.get(s, 0)) for s in OPEN), "disputed": int(status.get("disputed", 0)),
                "total": sum(int(n) for n in status.values()), "mine": int(per_person.get(annotator, 0)),
                "team": sum(int(n) for n in per_person.values()), "annotators": len(per_person)}

    def last_vote(self, annotator: str) -> dict[str, Any] | None:
        """What `undo_last(annotator)` would take back: item and decision id, the item's status, and the
        others whose votes count on it (`others`); None when there is nothing to undo."""
        with self._read() as conn:
            last = latest_vote(conn, annotator)
            if last is None:
                return None
            status = conn.execute(select(items.c.status).where(items.c.id == last[0])).scalar()
            voters = conn.execute(select(votes.c.annotator).where(votes.c.item_id == last[0])
                                  .order_by(votes.c.decision_id)).scalars().all()
        return {"item_id": last[0], "decision_id": last[1], "status": status, "others": [v for v in voters if v != annotator]}


def _ballot(decision: Any) -> dict[str, Any]:
    return {key: decision[key] for key in ("annotator", "action", "phase", "reason", "note")}
