"""The database behind the review store: a URL from what the user typed, and an engine set up for it.

SQLite (a file path, or a `sqlite:///` URL): WAL journal, foreign keys, a busy timeout, and every
write transaction opened with `BEGIN IMMEDIATE` so that two processes claiming at once are serialised.
Anything else is a SQLAlchemy URL used as given, e.g. `postgresql+psycopg://user:pw@host:5432/review`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from review_app.paths import check_db_path


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL for `db`: a URL is used as given, a path becomes a checked SQLite file."""
    text = str(db)
    if "://" in text:
        url = make_url(text)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            check_db_path(url.database)
        return text
    return f"sqlite:///{check_db_path(text)}"



def make_engine(url: str, is_sqlite: bool) -> Engine:
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
