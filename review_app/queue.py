"""Queue queries: which item an annotator gets next, and the leases that keep two people apart.

Functions over an open write transaction (the store opens it). On SQLite the transaction holds the
database write lock from its first statement (`BEGIN IMMEDIATE`); on Postgres the next-item query
takes `FOR UPDATE SKIP LOCKED`, so two claimers never lock the same row and neither waits.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, Select, delete, exists, func, select, update

from review_app.resolve import ADJUDICATOR, role_of
from review_app.schema import items, leases, votes

ORDERS = ("doubt", "random")


def held_item(conn: Connection, annotator: str) -> int | None:
    return conn.execute(
        select(leases.c.item_id).where(leases.c.annotator == annotator).order_by(leases.c.item_id).limit(1)
    ).scalar()


def renew(conn: Connection, item_id: int, annotator: str, expires_at: float) -> None:
    conn.execute(update(leases).where(leases.c.item_id == item_id, leases.c.annotator == annotator)
                 .values(expires_at=expires_at))


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


def next_free(conn: Connection, annotator: str, *, order: str, lock: bool, lang: str | None = None,
              label: str | None = None, flag: str | None = None, exclude: Iterable[int] = ()) -> int | None:
    """The first item in queue order that `annotator` may take: for an adjudicator a disputed item
    nobody holds comes first; otherwise a pending item with an open slot they have not voted on."""
    not_voted = ~exists().where(votes.c.item_id == items.c.id, votes.c.annotator == annotator)
    keys = (items.c.doubt.desc(), items.c.id) if order == "doubt" else (items.c.rand_key, items.c.id)
    queries = [select(items.c.id).where(items.c.status == "pending",
                                        items.c.decided + items.c.leased < items.c.needed, not_voted)]
    if role_of(conn, annotator) == ADJUDICATOR:
        queries.insert(0, select(items.c.id).where(items.c.status == "disputed", items.c.leased == 0, not_voted))
    for query in queries:
        query = _filtered(query, lang=lang, label=label, flag=flag, exclude=list(exclude))
        query = query.order_by(*keys).limit(1)
        if lock:
            query = query.with_for_update(skip_locked=True, of=items)
        item_id = conn.execute(query).scalar()
        if item_id is not None:
            return int(item_id)
    return None


def lease(conn: Connection, item_id: int, annotator: str, expires_at: float) -> None:
    conn.execute(leases.insert().values(item_id=item_id, annotator=annotator, expires_at=expires_at))
    conn.execute(update(items).where(items.c.id == item_id).values(leased=items.c.leased + 1))


def drop_lease(conn: Connection, item_id: int, annotator: str) -> bool:
    gone = conn.execute(delete(leases).where(leases.c.item_id == item_id, leases.c.annotator == annotator)).rowcount
    if gone:
        conn.execute(update(items).where(items.c.id == item_id).values(leased=items.c.leased - gone))
    return bool(gone)


def drop_all_leases(conn: Connection, annotator: str) -> None:
    for (held,) in conn.execute(select(leases.c.item_id).where(leases.c.annotator == annotator)).all():
        drop_lease(conn, held, annotator)


def expire(conn: Connection, now: float) -> None:
    """Expired leases return their items to the queue."""
    expired = conn.execute(select(leases.c.item_id).where(leases.c.expires_at < now)).scalars().all()
    if not expired:
        return
    conn.execute(delete(leases).where(leases.c.expires_at < now))
    live = select(func.count()).where(leases.c.item_id == items.c.id).scalar_subquery()
    conn.execute(update(items).where(items.c.id.in_(set(expired))).values(leased=live))


def lease_live(conn: Connection, item_id: int, annotator: str, now: float) -> bool:
    return conn.execute(select(leases.c.expires_at).where(
        leases.c.item_id == item_id, leases.c.annotator == annotator, leases.c.expires_at >= now
    )).scalar() is not None
