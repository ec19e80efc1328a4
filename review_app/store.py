"""The review queue over SQL (SQLAlchemy Core): enqueue, claim with a lease, decide, undo.

    store = ReviewStore("runs/fin/review.db")          # SQLite (WAL); or any SQLAlchemy URL
    store.enqueue(records, reviews=1)                   # same records twice -> added 0
    item = store.claim("ana")                           # most doubtful free item, leased to ana
    store.decide(item.id, "ana", "edit", label="negative", text="...", reason="label was wrong")
    store.undo_last("ana")                              # a new 'undo' decision; the log only grows

Every state change is one transaction. On SQLite each write transaction starts with
`BEGIN IMMEDIATE` (the database write lock), so two processes claiming at once are serialised
and can never lease the same item; on Postgres the claim uses `FOR UPDATE SKIP LOCKED`.
No Streamlit import here: the app, the CLI and the demo all call this module.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, and_, create_engine, delete, event, exists, func, select, update
from sqlalchemy.engine import make_url

from core.errors import UserError, fail
from core.records import Record
from review_app.paths import check_db_path
from review_app.schema import decisions, items, leases, migrate, votes

Action = Literal["approve", "reject", "edit"]
ACTIONS = ("approve", "reject", "edit")
ORDERS = ("doubt", "random")
DEFAULT_LEASE_S = 600.0


class Conflict(UserError):
    """The decision cannot be recorded as asked (already decided, claimed by someone else)."""


@dataclass(frozen=True)
class Item:
    id: int
    record: Record
    status: str
    doubt: float
    needed: int
    decided: int
    label: str
    flags: tuple[str, ...]


@dataclass(frozen=True)
class EnqueueResult:
    added: int
    skipped: int


@cache
def label_field(task: str) -> str:
    """The task's label field ("label", "intent"); 'label' when the task is not a built-in one."""
    try:
        from core.tasks import load_task

        return load_task(task).label_name
    except UserError:
        return "label"


def primary_label(record: Record) -> str:
    name = label_field(record.task)
    return record.labels.get(name) or next(iter(record.labels.values()), "")


def doubt_of(record: Record) -> float:
    value = record.meta.get("doubt")
    try:
        return min(1.0, max(0.0, float(value))) if value is not None else 0.5
    except (TypeError, ValueError):
        return 0.5


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL for `db`: a URL is used as given, a path becomes a checked SQLite file."""
    text = str(db)
    if "://" in text:
        url = make_url(text)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            check_db_path(url.database)
        return text
    return f"sqlite:///{check_db_path(text)}"


class ReviewStore:
    """The review queue. Safe to share between threads; several processes may open the same database."""

    def __init__(self, db: str | Path, *, lease_seconds: float = DEFAULT_LEASE_S,
                 clock: Callable[[], float] = time.time, create: bool = True):
        self.url = database_url(db)
        self.lease_seconds = lease_seconds
        self.clock = clock
        url = make_url(self.url)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        if self.is_sqlite and not create and url.database and not Path(url.database).is_file():
            fail(f"{url.database}: no review database here (create it with "
                 f"`python -m review_app enqueue --db {url.database} --in accepted.jsonl`)")
        if self.is_sqlite and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = _make_engine(self.url, self.is_sqlite)
        with self._write() as conn:
            migrate(conn)

    def close(self) -> None:
        self.engine.dispose()

    # ---- transactions -----------------------------------------------------------------------
    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[Connection]:
        """A write transaction. `durable=False` (claims, releases: a lost lease is harmless) skips the
        fsync at commit on SQLite; the next durable commit syncs those pages too."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_sync="FULL" if durable else "NORMAL")
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
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
            with self._write() as conn:
                known = set(conn.execute(select(items.c.record_id).where(items.c.record_id.in_(list(pending))))
                            .scalars())
                rows = [self._item_row(r, reviews, double_fraction, seed, source_file)
                        for rid, r in pending.items() if rid not in known]
                if rows:
                    conn.execute(items.insert(), rows)
            added += len(rows)
            skipped += len(pending) - len(rows)
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

    def _item_row(self, record: Record, reviews: int, double_fraction: float, seed: int,
                  source_file: str) -> dict[str, Any]:
        provenance = record.provenance
        sampling = provenance.get("sampling")
        strategy = sampling.get("strategy", "") if isinstance(sampling, dict) else str(sampling or "")
        failed = [v.name for v in record.verdicts if not v.passed]
        needed = 2 if reviews == 2 or _unit(f"double:{seed}:{record.id}") < double_fraction else 1
        return {
            "record_id": record.id, "task": record.task, "lang": record.lang,
            "label": primary_label(record), "flags": "," + "".join(f"{n}," for n in failed),
            "template_id": str(provenance.get("template_id") or ""), "strategy": str(strategy),
            "doubt": doubt_of(record), "rand_key": _unit(f"order:{seed}:{record.id}"),
            "record_json": record.model_dump_json(), "status": "pending", "needed": needed,
            "decided": 0, "leased": 0, "enqueued_at": self.clock(), "source_file": source_file,
        }

    # ---- claim ------------------------------------------------------------------------------
    def claim(self, annotator: str, *, order: str = "doubt", lang: str | None = None,
              label: str | None = None, flag: str | None = None, exclude: Iterable[int] = ()) -> Item | None:
        """Lease the next free item to `annotator` (or return the one they already hold); None when
        the queue (as filtered, less the `exclude` item ids they skipped) is empty for them."""
        annotator = _check_annotator(annotator)
        if order not in ORDERS:
            fail(f"unknown queue order '{order}' (choose from: {', '.join(ORDERS)})")
        now = self.clock()
        with self._write(durable=False) as conn:
            self._expire(conn, now)
            held = conn.execute(
                select(leases.c.item_id).where(leases.c.annotator == annotator).order_by(leases.c.item_id).limit(1)
            ).scalar()
            if held is not None:
                conn.execute(update(leases).where(leases.c.item_id == held, leases.c.annotator == annotator)
                             .values(expires_at=now + self.lease_seconds))
                return self._item(conn, held)
            query = select(items.c.id).where(
                items.c.status == "pending",
                items.c.decided + items.c.leased < items.c.needed,
                ~exists().where(votes.c.item_id == items.c.id, votes.c.annotator == annotator),
            )
            if lang:
                query = query.where(items.c.lang == lang)
            if label:
                query = query.where(items.c.label == label)
            if flag:
                query = query.where(items.c.flags.contains(f",{flag},", autoescape=True))
            if exclude := list(exclude):
                query = query.where(items.c.id.not_in(exclude))
            keys = (items.c.doubt.desc(), items.c.id) if order == "doubt" else (items.c.rand_key, items.c.id)
            query = query.order_by(*keys).limit(1)
            if not self.is_sqlite:
                query = query.with_for_update(skip_locked=True, of=items)
            item_id = conn.execute(query).scalar()
            if item_id is None:
                return None
            self._lease(conn, item_id, annotator, now)
            return self._item(conn, item_id)

    def release(self, item_id: int, annotator: str) -> None:
        """Give a leased item back to the queue (skip)."""
        with self._write(durable=False) as conn:
            self._drop_lease(conn, item_id, annotator)

    def _lease(self, conn: Connection, item_id: int, annotator: str, now: float) -> None:
        conn.execute(leases.insert().values(item_id=item_id, annotator=annotator, expires_at=now + self.lease_seconds))
        conn.execute(update(items).where(items.c.id == item_id).values(leased=items.c.leased + 1))

    def _drop_lease(self, conn: Connection, item_id: int, annotator: str) -> bool:
        gone = conn.execute(delete(leases).where(leases.c.item_id == item_id, leases.c.annotator == annotator)).rowcount
        if gone:
            conn.execute(update(items).where(items.c.id == item_id).values(leased=items.c.leased - gone))
        return bool(gone)

    def _expire(self, conn: Connection, now: float) -> None:
        expired = conn.execute(select(leases.c.item_id).where(leases.c.expires_at < now)).scalars().all()
        if not expired:
            return
        conn.execute(delete(leases).where(leases.c.expires_at < now))
        live = select(func.count()).where(leases.c.item_id == items.c.id).scalar_subquery()
        conn.execute(update(items).where(items.c.id.in_(set(expired))).values(leased=live))

    def holds_lease(self, item_id: int, annotator: str) -> bool:
        with self._read() as conn:
            return conn.execute(select(leases.c.expires_at).where(
                leases.c.item_id == item_id, leases.c.annotator == annotator, leases.c.expires_at >= self.clock()
            )).scalar() is not None

    # ---- decide / undo ----------------------------------------------------------------------
    def decide(self, item_id: int, annotator: str, action: str, *, label: str | None = None,
               text: str | None = None, labels: dict[str, str] | None = None, reason: str = "") -> int:
        """Record one decision and return its id. `edit` takes a new `label` and/or `text` (and may
        replace other output fields via `labels`); `reject` should say why in `reason`.

        Raises `Conflict` when the item is already decided, was already decided by this annotator,
        or every open slot is leased to someone else. Works without a lease (unattended review)."""
        annotator = _check_annotator(annotator)
        if action not in ACTIONS:
            fail(f"unknown action '{action}' (choose from: {', '.join(ACTIONS)})")
        now = self.clock()
        with self._write() as conn:
            self._expire(conn, now)
            row = conn.execute(select(items).where(items.c.id == item_id)).mappings().first()
            if row is None:
                raise Conflict(f"item {item_id}: no such item")
            if row["status"] != "pending":
                raise Conflict(f"item {item_id}: already decided ({row['status']})")
            if conn.execute(select(votes.c.decision_id).where(votes.c.item_id == item_id,
                                                              votes.c.annotator == annotator)).scalar():
                raise Conflict(f"item {item_id}: {annotator} already decided it")
            mine = self._drop_lease(conn, item_id, annotator)
            others = row["leased"] - int(mine)
            if row["decided"] + others >= row["needed"]:
                raise Conflict(f"item {item_id}: claimed by another annotator")
            record = Record.model_validate_json(row["record_json"])
            current_text, current_labels = self._current(conn, item_id, record)
            new_labels = dict(current_labels)
            new_text = current_text
            if action == "edit":
                new_labels.update(labels or {})
                if label is not None:
                    new_labels[label_field(record.task)] = label
                new_text = current_text if text is None else text
                if not new_text.strip():
                    fail(f"item {item_id}: edited text is empty")
                if new_text == current_text and new_labels == current_labels:
                    action = "approve"  # an edit that changes nothing is an approval
            name = label_field(record.task)
            decision_id = conn.execute(decisions.insert().values(
                item_id=item_id, annotator=annotator, action=action,
                label_before=current_labels.get(name, row["label"]), label_after=new_labels.get(name, row["label"]),
                labels_after_json=json.dumps(new_labels, ensure_ascii=False),
                text_before=current_text, text_after=new_text, reason=reason, created_at=now,
            )).inserted_primary_key[0]
            conn.execute(votes.insert().values(item_id=item_id, annotator=annotator, decision_id=decision_id))
            self._settle(conn, item_id)
            return int(decision_id)

    def undo_last(self, annotator: str) -> int | None:
        """Undo `annotator`'s latest decision that still counts: an 'undo' row is appended, the item
        goes back to pending and is leased to them again. Returns the item id (None: nothing to undo)."""
        annotator = _check_annotator(annotator)
        now = self.clock()
        with self._write() as conn:
            self._expire(conn, now)
            last = conn.execute(
                select(votes.c.item_id, votes.c.decision_id).where(votes.c.annotator == annotator)
                .order_by(votes.c.decision_id.desc()).limit(1)
            ).first()
            if last is None:
                return None
            item_id, target = last
            conn.execute(delete(votes).where(votes.c.decision_id == target))
            conn.execute(decisions.insert().values(item_id=item_id, annotator=annotator, action="undo",
                                                   undoes=target, reason="undo", created_at=now))
            # Whatever they were looking at goes back to the queue; the undone item comes to them.
            for (held,) in conn.execute(select(leases.c.item_id).where(leases.c.annotator == annotator)).all():
                self._drop_lease(conn, held, annotator)
            self._settle(conn, item_id)
            self._lease(conn, item_id, annotator, now)
            return int(item_id)

    def _current(self, conn: Connection, item_id: int, record: Record) -> tuple[str, dict[str, str]]:
        """The item's text and labels after the latest edit that still counts."""
        last_edit = conn.execute(
            select(decisions.c.text_after, decisions.c.labels_after_json)
            .join(votes, votes.c.decision_id == decisions.c.id)
            .where(votes.c.item_id == item_id, decisions.c.action == "edit")
            .order_by(decisions.c.id.desc()).limit(1)
        ).first()
        if last_edit is None:
            return record.text, dict(record.labels)
        return last_edit[0], json.loads(last_edit[1])

    def _settle(self, conn: Connection, item_id: int) -> None:
        """Recompute an item's derived state from the decisions that count."""
        row = conn.execute(select(items.c.needed).where(items.c.id == item_id)).first()
        needed = row[0]
        counted = conn.execute(
            select(decisions.c.action, decisions.c.label_after, decisions.c.text_after)
            .join(votes, votes.c.decision_id == decisions.c.id)
            .where(votes.c.item_id == item_id).order_by(decisions.c.id)
        ).all()
        status = "pending"
        if len(counted) >= needed:
            outcomes = [("reject", "", "") if a == "reject" else ("accept", lab, txt) for a, lab, txt in counted]
            top = max(set(outcomes), key=lambda o: (outcomes.count(o), -outcomes[::-1].index(o)))
            if outcomes.count(top) * 2 <= len(outcomes) and needed < 3:
                needed = 3  # two reviewers disagree: a third decides
            elif top[0] == "reject":
                status = "rejected"
            else:
                status = "edited" if any(a == "edit" for a, *_ in counted) else "approved"
        conn.execute(update(items).where(items.c.id == item_id)
                     .values(status=status, decided=len(counted), needed=needed))

    # ---- reading ----------------------------------------------------------------------------
    def _item(self, conn: Connection, item_id: int) -> Item:
        row = conn.execute(select(items).where(items.c.id == item_id)).mappings().one()
        return _to_item(row)

    def get(self, item_id: int) -> Item:
        with self._read() as conn:
            row = conn.execute(select(items).where(items.c.id == item_id)).mappings().first()
        if row is None:
            fail(f"item {item_id}: no such item")
        return _to_item(row)

    def list_items(self, *, status: str | None = None, lang: str | None = None, label: str | None = None,
                   flag: str | None = None, limit: int | None = None) -> list[Item]:
        query = select(items).order_by(items.c.id)
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
            return [_to_item(r) for r in conn.execute(query).mappings()]

    def final_state(self, item_id: int) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
        """(text, labels, decisions that count) of an item: what export writes."""
        with self._read() as conn:
            record = Record.model_validate_json(
                conn.execute(select(items.c.record_json).where(items.c.id == item_id)).scalar_one())
            text, labels = self._current(conn, item_id, record)
            counted = conn.execute(select(decisions).join(votes, votes.c.decision_id == decisions.c.id)
                                   .where(votes.c.item_id == item_id).order_by(decisions.c.id)).mappings().all()
        return text, labels, [dict(r) for r in counted]

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

    def filter_values(self) -> dict[str, list[str]]:
        """Languages, labels and validator flags present in the queue (for the app's filters)."""
        with self._read() as conn:
            langs = conn.execute(select(items.c.lang).distinct().order_by(items.c.lang)).scalars().all()
            labels = conn.execute(select(items.c.label).distinct().order_by(items.c.label)).scalars().all()
            flag_sets = conn.execute(select(items.c.flags).distinct()).scalars().all()
        flags = sorted({f for s in flag_sets for f in s.split(",") if f})
        return {"lang": list(langs), "label": list(labels), "flag": flags}


def _to_item(row: Any) -> Item:
    return Item(id=row["id"], record=Record.model_validate_json(row["record_json"]), status=row["status"],
                doubt=row["doubt"], needed=row["needed"], decided=row["decided"], label=row["label"],
                flags=tuple(f for f in row["flags"].split(",") if f))


def _unit(key: str) -> float:
    """A deterministic number in [0, 1) from a string (seeded choices without a global RNG)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def _check_annotator(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        fail("annotator name must be 1 to 100 characters")
    return name


def _make_engine(url: str, is_sqlite: bool) -> Engine:
    if not is_sqlite:
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); pysqlite's implicit transactions would defeat it.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: two claimers cannot both read the same free item.
        options = conn.get_execution_options()
        # FULL: a committed decision survives a crash of the app and of the machine (WAL fsync).
        conn.exec_driver_sql(f"PRAGMA synchronous={options.get('sqlite_sync', 'FULL')}")
        conn.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'IMMEDIATE')}")

    return engine
