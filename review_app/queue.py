"""Queue queries: which item an annotator gets next, and the leases that keep two people apart.

    item_id = next_free(conn, "ana", now=now, order="doubt", lock=True)
    lease(conn, item_id, "ana", now=now, expires_at=now + 600)

Functions over an open write transaction (the store opens it). On SQLite the transaction holds the
database write lock from its first statement (`BEGIN IMMEDIATE`); on Postgres the next-item query
takes `FOR UPDATE SKIP LOCKED`, so two claimers never lock the same row and neither waits.

Leases expire lazily. An item row carries how many leases it has (`leased`) and when the last one
runs out (`lease_until`); the next-item query counts an item's leases only while `lease_until` has not
passed, so an abandoned item is free again the moment its lease ends, with no clean-up pass before
each claim (which used to make every claimer wait on the same DELETE). The lease rows themselves are
tidied per item, whenever that item is claimed, decided or released (`refresh`). While one of two
leases on a double-reviewed item is still live, both count (at most one lease length late).

Every change to an item's leases also updates its row, and on Postgres a claim locks the row: a
concurrent claimer that reaches the row re-checks `leased`/`lease_until` on its newest version.
Lock order is always the item row first, then its lease rows (`_lock_item`), so two transactions
touching one item's leases wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Select, case, delete, exists, func, select, update

from review_app.resolve import ADJUDICATOR, role_of
from review_app.schema import items, leases, votes

ORDERS = ("doubt", "random")


def live_leases(now: float):  # -> a SQL expression over `items`
    """The number of an item's leases that still count at `now`, from the item row alone."""
    return case((items.c.lease_until >= now, items.c.leased), else_=0)


def held_item(conn: Connection, annotator: str, now: float) -> int | None:
    return conn.execute(
        select(leases.c.item_id).where(leases.c.annotator == annotator, leases.c.expires_at >= now)
        .order_by(leases.c.item_id).limit(1)
    ).scalar()


def refresh(conn: Connection, item_id: int, now: float) -> None:
    """Drop the item's expired lease rows and write its lease count and latest expiry on its row."""
    conn.execute(delete(leases).where(leases.c.item_id == item_id, leases.c.expires_at < now))
    conn.execute(update(items).where(items.c.id == item_id).values(
        leased=select(func.count()).where(leases.c.item_id == items.c.id).scalar_subquery(),
        lease_until=func.coalesce(select(func.max(leases.c.expires_at)).where(leases.c.item_id == items.c.id)
                                  .scalar_subquery(), 0.0)))


def _lock_item(conn: Connection, item_id: int) -> None:
    """Postgres: take the item row's lock before touching its leases (SQLite: the write lock is held)."""
    if conn.dialect.name != "sqlite":
        conn.execute(select(items.c.id).where(items.c.id == item_id).with_for_update())


def renew(conn: Connection, item_id: int, annotator: str, now: float, expires_at: float) -> None:
    _lock_item(conn, item_id)
    conn.execute(update(leases).where(leases.c.item_id == item_id, leases.c.annotator == annotator)
                 .values(expires_at=expires_at))
    refresh(conn, item_id, now)


def _filtered(query: Select, *, lang: str | None, label: str | None, flag: str | None,
              exclude: list[int]) -> Select:
    if lang:
        query = query.where(items.c.lang == lang)
    if label:
        query = query.where(items.c.label == label)
    if flag:
        query = query.where(items.c.flags.contains(f",{flag},", autoescape=True))
    if exclude:
        query = query.where(items.c.id.not_in(exclude))
    return query


def next_free(conn: Connection, annotator: str, *, now: float, order: str, lock: bool, lang: str | None = None,
              label: str | None = None, flag: str | None = None, exclude: Iterable[int] = ()) -> int | None:
    """The first item in queue order that `annotator` may take: for an adjudicator a disputed item
    nobody holds comes first; otherwise a pending item with an open slot they have not voted on."""
    not_voted = ~exists().where(votes.c.item_id == items.c.id, votes.c.annotator == annotator)
    keys = (items.c.doubt.desc(), items.c.id) if order == "doubt" else (items.c.rand_key, items.c.id)
    live = live_leases(now)
    queries = [select(items.c.id).where(items.c.status == "pending", items.c.decided + live < items.c.needed,
                                        not_voted)]
    if role_of(conn, annotator) == ADJUDICATOR:
        queries.insert(0, select(items.c.id).where(items.c.status == "disputed", live == 0, not_voted))
    for query in queries:
        query = _filtered(query, lang=lang, label=label, flag=flag, exclude=list(exclude))
        query = query.order_by(*keys).limit(1)
        if lock:
            query = query.with_for_update(skip_locked=True, of=items)
        item_id = conn.execute(query).scalar()
        if item_id is not None:
            return int(item_id)
    return None


def lease(conn: Connection, item_id: int, annotator: str, *, now: float, expires_at: float) -> None:
    """Lease a (locked) item to `annotator`; an expired lease of theirs on it is replaced."""
    conn.execute(delete(leases).where(leases.c.item_id == item_id, leases.c.expires_at < now))
    conn.execute(leases.insert().values(item_id=item_id, annotator=annotator, expires_at=expires_at))
    refresh(conn, item_id, now)


def drop_lease(conn: Connection, item_id: int, annotator: str, now: float) -> bool:
    """Remove `annotator`'s lease on the item; True when it was still live."""
    _lock_item(conn, item_id)
    live = conn.execute(select(leases.c.expires_at).where(leases.c.item_id == item_id,
                                                          leases.c.annotator == annotator)).scalar()
    if live is None:
        return False
    conn.execute(delete(leases).where(leases.c.item_id == item_id, leases.c.annotator == annotator))
    refresh(conn, item_id, now)
    return live >= now


def drop_all_leases(conn: Connection, annotator: str, now: float) -> None:
    for (held,) in conn.execute(select(leases.c.item_id).where(leases.c.annotator == annotator)).all():
        drop_lease(conn, held, annotator, now)


def others_leasing(conn: Connection, item_id: int, annotator: str, now: float) -> int:
    """How many people other than `annotator` hold a live lease on the item."""
    return int(conn.execute(select(func.count()).select_from(leases).where(
        leases.c.item_id == item_id, leases.c.annotator != annotator, leases.c.expires_at >= now)).scalar())


def lease_live(conn: Connection, item_id: int, annotator: str, now: float) -> bool:
    return conn.execute(select(leases.c.expires_at).where(
        leases.c.item_id == item_id, leases.c.annotator == annotator, leases.c.expires_at >= now
    )).scalar() is not None
