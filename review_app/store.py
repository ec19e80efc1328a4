"""The review queue over SQL (SQLAlchemy Core): enqueue, claim with a lease, decide, undo.

    store = ReviewStore("runs/fin/review.db")          # SQLite (WAL); or any SQLAlchemy URL
    store.enqueue(records, reviews=1)                   # same records twice -> added 0
    item = store.claim("ana")                           # most doubtful free item, leased to ana
    store.decide(item.id, "ana", "edit", label="negative", text="...", reason="label was wrong")
    store.decide(item.id, "bob", "approve", view=item.view)  # refused if the item changed since bob saw it
    store.undo_last("ana")                              # a new 'undo' decision; the log only grows

Every state change is one transaction. No Streamlit import here: the app, the CLI and the demo all call
this module. Votes: `review_app.resolve`; next item and leases: `review_app.queue`; the reads (items,
versions with their votes, the log, progress): `review_app.store_reads`. A database that
cannot be reached is one `DatabaseUnavailable` line naming host and database, never the password; a
decision whose database went away is either confirmed stored or reported `NotSaved`.
The store trusts the annotator name its caller gives: who may act under which name is the app's
sign-in (`review_app.auth`); anyone holding the database URL can write to the database anyway.
Concurrency: docs/review.md#design-review_appstorepy
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from core.errors import UserError, fail
from core.records import Record
from review_app import queue
from review_app.engine import Busy, DatabaseUnavailable, database_url, make_engine, safe_url, translate_errors
from review_app.items import Item, item_row, label_field
from review_app.resolve import (
    ACTIONS,
    ROLES,
    DecisionError,
    SlotsTaken,
    StaleView,
    record_decision,
    remove_vote,
    role_of,
)
from review_app.schema import decisions, items, migrate, roles, votes
from review_app.store_reads import StoreReads

__all__ = ["Conflict", "EnqueueResult", "Item", "NotSaved", "ReviewStore", "Stale", "label_field"]

ORDERS = queue.ORDERS
DEFAULT_LEASE_S = 600.0
RETRIES = 4  # a transaction Postgres rolled back for a deadlock or serialization conflict runs again


class Conflict(UserError):
    """The decision cannot be recorded as asked (already decided, claimed by someone else)."""


class Stale(Conflict):
    """The item changed since the annotator opened it (a vote cast or undone); their vote was refused."""


class NotSaved(DatabaseUnavailable):
    """A decision the database did not confirm: it went away before or while committing."""


@dataclass(frozen=True)
class EnqueueResult:
    added: int
    skipped: int


class ReviewStore(StoreReads):
    """The review queue. Safe to share between threads; several processes may open the same database.
    Its reads (items, versions, the log, progress) are `review_app.store_reads.StoreReads`."""

    def __init__(self, db: str | Path, *, lease_seconds: float = DEFAULT_LEASE_S,
                 clock: Callable[[], float] = time.time, create: bool = True):
        self.url = database_url(db)
        self.safe_url = safe_url(self.url)  # what may be printed or logged
        self.lease_seconds = lease_seconds
        self.clock = clock
        url = make_url(self.url)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        if self.is_sqlite and not create and url.database and not Path(url.database).is_file():
            fail(f"{url.database}: no review database here (create it with "
                 f"`python -m review_app enqueue --db {url.database} --in accepted.jsonl`)")
        if self.is_sqlite and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        with translate_errors(self.url):
            self.engine = make_engine(self.url, self.is_sqlite)
        with self._write() as conn:
            migrate(conn)

    def close(self) -> None:
        self.engine.dispose()

    # ---- transactions -----------------------------------------------------------------------
    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[Connection]:
        """A write transaction. `durable=False` (claims, releases: a lost lease is harmless) skips the
        fsync at commit on SQLite; the next durable commit syncs those pages too."""
        with translate_errors(self.url), self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_sync="FULL" if durable else "NORMAL")
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with translate_errors(self.url), self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                yield conn

    # ---- enqueue ----------------------------------------------------------------------------
    def enqueue(self, records: Iterable[Record], *, reviews: int = 1, double_fraction: float = 0.0,
                seed: int = 0, source_file: str = "", batch: int = 500) -> EnqueueResult:
        """Add records not yet queued (by record id). `reviews` decisions per item, or 2 for a seeded
        `double_fraction` of them (the overlap sample that inter-annotator agreement is measured on)."""
        if reviews not in (1, 2):
            fail(f"reviews per item must be 1 or 2, got {reviews}")
        if not 0.0 <= double_fraction <= 1.0:
            fail(f"double fraction must be between 0 and 1, got {double_fraction}")
        added = skipped = 0
        pending: dict[str, Record] = {}

        def flush() -> None:
            nonlocal added, skipped
            if not pending:
                return
            rows = [item_row(r, reviews=reviews, double_fraction=double_fraction, seed=seed, source_file=source_file,
                             now=self.clock()) for r in pending.values()]
            # INSERT ... ON CONFLICT DO NOTHING: two runs enqueueing the same file at once both succeed;
            # the rows the other run inserted first are simply skipped (no check-then-insert race).
            dialect = postgresql if not self.is_sqlite else sqlite
            stmt = dialect.insert(items).on_conflict_do_nothing(index_elements=["record_id"]).returning(items.c.id)
            def insert() -> int:
                with self._write() as conn:
                    return len(conn.execute(stmt, rows).all())

            new = self._retry(insert)
            added += new
            skipped += len(rows) - new
            pending.clear()

        for record in records:
            if record.id in pending:
                skipped += 1
                continue
            pending[record.id] = record
            if len(pending) >= batch:
                flush()
        flush()
        return EnqueueResult(added, skipped)

    # ---- claim ------------------------------------------------------------------------------
    def claim(self, annotator: str, *, order: str = "doubt", lang: str | None = None,
              label: str | None = None, flag: str | None = None, exclude: Iterable[int] = ()) -> Item | None:
        """Lease the next free item to `annotator` (or return the one they already hold); None when
        the queue (as filtered, less the `exclude` item ids they skipped) is empty for them.
        Adjudicators get disputed items first."""
        annotator = _check_annotator(annotator)
        if order not in queue.ORDERS:
            fail(f"unknown queue order '{order}' (choose from: {', '.join(queue.ORDERS)})")
        return self._retry(lambda: self._claim(annotator, order=order, lang=lang, label=label, flag=flag,
                                               exclude=exclude))

    def _claim(self, annotator: str, *, order: str, lang: str | None, label: str | None, flag: str | None,
               exclude: Iterable[int]) -> Item | None:
        now = self.clock()
        with self._write(durable=False) as conn:
            held = queue.held_item(conn, annotator, now)
            if held is not None:
                queue.renew(conn, held, annotator, now, now + self.lease_seconds)
                return self._item(conn, held)
            item_id = queue.next_free(conn, annotator, now=now, order=order, lock=not self.is_sqlite, lang=lang,
                                      label=label, flag=flag, exclude=exclude)
            if item_id is None:
                return None
            queue.lease(conn, item_id, annotator, now=now, expires_at=now + self.lease_seconds)
            return self._item(conn, item_id)

    def _retry(self, step: Callable[[], Any]) -> Any:
        for attempt in range(RETRIES):
            try:
                return step()
            except Busy:  # rolled back whole: nothing was written, so running it again is safe
                if attempt == RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def release(self, item_id: int, annotator: str) -> None:
        """Give a leased item back to the queue (skip)."""
        def step() -> None:
            with self._write(durable=False) as conn:
                queue.drop_lease(conn, item_id, annotator, self.clock())

        self._retry(step)

    def holds_lease(self, item_id: int, annotator: str) -> bool:
        with self._read() as conn:
            return queue.lease_live(conn, item_id, annotator, self.clock())

    # ---- roles, decide, undo ----------------------------------------------------------------
    def set_role(self, annotator: str, role: str) -> None:
        """Give `annotator` a role: 'adjudicator' (decides disputed items) or 'annotator' (the default)."""
        annotator = _check_annotator(annotator)
        if role not in ROLES:
            fail(f"unknown role '{role}' (choose from: {', '.join(ROLES)})")
        with self._write() as conn:
            conn.execute(delete(roles).where(roles.c.annotator == annotator))
            if role != "annotator":
                conn.execute(roles.insert().values(annotator=annotator, role=role, granted_at=self.clock()))

    def role(self, annotator: str) -> str:
        with self._read() as conn:
            return role_of(conn, annotator)

    def decide(self, item_id: int, annotator: str, action: str, *, version: str | None = None,
               view: str | None = None, label: str | None = None, text: str | None = None,
               labels: dict[str, str] | None = None, reason: str = "", note: str = "") -> int:
        """Record one vote and return its decision id (the rule: `review_app.resolve`).

        `view` is the `Item.view` the annotator was shown (from `claim` or `get`): when the item has
        changed since in a way that matters (its votes split, a vote was undone), the vote is refused
        with `Stale` rather than counted for something they did not see. `version`: approve votes for
        that version (a tie-breaker or adjudicator choosing one; default the original); edit edits it.
        `edit` takes a new `label` and/or `text` (and other output fields via `labels`); `reason` is
        why (for a reject, one of the page's reasons, or "" when none was given); `note` is the
        annotator's free text, kept on this vote (the lead sees both).

        Raises `Conflict` when the item is already decided, was already decided by this annotator,
        every open slot is leased to someone else, or it is disputed and they are no adjudicator;
        `NotSaved` when the database went away and the vote is not in it. Works without a lease
        (unattended review)."""
        annotator = _check_annotator(annotator)
        if action not in ACTIONS:
            fail(f"unknown action '{action}' (choose from: {', '.join(ACTIONS)})")
        now = self.clock()
        try:
            return self._retry(lambda: self._decide(item_id, annotator, action, now, version=version, view=view,
                                                    label=label, text=text, labels=labels, reason=reason,
                                                    note=note))
        except SlotsTaken as exc:
            # The slot is someone else's: let go of ours, so the next claim moves on to another item.
            self.release(item_id, annotator)
            raise Conflict(str(exc)) from None
        except NotSaved:
            raise
        except DatabaseUnavailable as exc:
            return self._confirm(item_id, annotator, now, exc)

    def _decide(self, item_id: int, annotator: str, action: str, now: float, **kw: Any) -> int:
        with self._write() as conn:
            query = select(items).where(items.c.id == item_id)
            row = conn.execute(query if self.is_sqlite else query.with_for_update()).mappings().first()
            if row is None:
                raise Conflict(f"item {item_id}: no such item")
            if conn.execute(select(votes.c.decision_id).where(votes.c.item_id == item_id,
                                                              votes.c.annotator == annotator)).scalar():
                raise Conflict(f"item {item_id}: {annotator} already decided it")
            others = queue.others_leasing(conn, item_id, annotator, now)
            try:
                decision_id = record_decision(conn, row, annotator, action, label_name=label_field(row["task"]),
                                              now=now, others_leasing=others, **kw)
            except StaleView as exc:
                raise Stale(str(exc)) from None
            except SlotsTaken:
                raise
            except DecisionError as exc:
                raise Conflict(str(exc)) from None
            queue.drop_lease(conn, item_id, annotator, now)
            return decision_id

    def _confirm(self, item_id: int, annotator: str, at: float, error: DatabaseUnavailable) -> int:
        """After the database went away during a decision: its id when the vote reached the database
        after all (the commit went through before the connection dropped), else `NotSaved`."""
        try:
            with self._read() as conn:
                found = conn.execute(select(decisions.c.id).join(votes, votes.c.decision_id == decisions.c.id).where(
                    votes.c.item_id == item_id, votes.c.annotator == annotator, decisions.c.created_at == at,
                )).scalar()
        except DatabaseUnavailable:
            raise NotSaved(f"item {item_id}: not saved, {error}; decide it again once the database is back "
                           "(if it had reached the database, the item will not come back to you)") from None
        if found is None:
            raise NotSaved(f"item {item_id}: not saved, {error}; decide it again") from None
        return int(found)

    def undo_last(self, annotator: str) -> int | None:
        """Undo `annotator`'s latest decision that still counts: an 'undo' row is appended, the item's
        state is recomputed (back to pending, the number of decisions needed lowered again where the
        disagreement that raised it is gone) and it is leased to them again. Returns the item id
        (None: nothing to undo)."""
        annotator = _check_annotator(annotator)
        now = self.clock()
        return self._retry(lambda: self._undo(annotator, now))

    def _undo(self, annotator: str, now: float) -> int | None:
        with self._write() as conn:
            item_id = remove_vote(conn, annotator, now)
            if item_id is None:
                return None
            # Whatever they were looking at goes back to the queue; the undone item comes to them.
            queue.drop_all_leases(conn, annotator, now)
            queue.lease(conn, item_id, annotator, now=now, expires_at=now + self.lease_seconds)
            return item_id


def _check_annotator(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        fail("annotator name must be 1 to 100 characters")
    return name
