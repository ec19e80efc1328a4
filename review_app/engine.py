"""The database behind the review store: a URL from what the user typed, an engine set up for it, and
database errors as one line that never shows the password.

    url = database_url("runs/fin/review.db")           # or "postgresql+psycopg://user:pw@host/review"
    engine = make_engine(url, is_sqlite=False)
    safe_url(url)                                       # postgresql+psycopg://user:***@host/review
    with translate_errors(url): ...                     # OperationalError -> DatabaseUnavailable (one line)

SQLite (a file path, or a `sqlite:///` URL): WAL journal, foreign keys, a busy timeout, and every
write transaction opened with `BEGIN IMMEDIATE` so that two processes claiming at once are serialised.
Anything else is a SQLAlchemy URL used as given, e.g. `postgresql+psycopg://user:pw@host:5432/review`;
connections are checked before use (`pool_pre_ping`), so a restarted server costs no failed request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url

from core.errors import UserError
from core.urls import redact_url
from review_app.paths import check_db_path

CONNECT_TIMEOUT_S = 10  # an unreachable host is one line after this long, not a hang


class DatabaseUnavailable(UserError):
    """The review database cannot be reached, authenticated against or used; one line, no password."""


class Busy(DatabaseUnavailable):
    """Postgres rolled the transaction back to resolve a deadlock or a serialization conflict (SQLSTATE
    class 40): nothing was written, and the same transaction can simply run again."""


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL for `db`: a URL is used as given, a path becomes a checked SQLite file."""
    text = str(db)
    if "://" in text:
        try:
            url = make_url(text)
        except (exc.ArgumentError, ValueError):
            # These messages may repeat the URL (and so its password): say what is wrong only.
            raise UserError("--db: not a database URL (expected e.g. postgresql+psycopg://user:PASSWORD@host:5432/"
                            "review, or a path to a .db file)") from None
        try:
            url.get_dialect().import_dbapi()  # the driver module itself, e.g. psycopg
        except (exc.ArgumentError, ImportError):
            raise UserError(f"--db: no database driver for '{url.drivername}://' here (PostgreSQL: "
                            "postgresql+psycopg://user:PASSWORD@host:5432/review)") from None
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            check_db_path(url.database)
        return text
    return f"sqlite:///{check_db_path(text)}"


def safe_url(db: str | Path | URL) -> str:
    """`db` for printing and logging: a URL with its password masked, a file path as it is."""
    if isinstance(db, URL):
        return db.render_as_string(hide_password=True)
    text = str(db)
    if "://" not in text:
        return text
    try:
        return redact_url(text)
    except ValueError:
        return "(an unparseable database URL)"


def where(url: str) -> str:
    """'database review on host db.example.org:5432' (or the SQLite file): what an error names."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return f"SQLite database {u.database}"
    host = u.host or "localhost (socket)"
    port = f":{u.port}" if u.port else ""
    return f"database '{u.database or ''}' on host {host}{port}"


def _reason(error: BaseException, secret: str | None) -> str:
    """The driver's own first line (libpq: 'connection refused', 'password authentication failed ...'),
    with the password scrubbed should a driver ever echo it."""
    orig = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    text = lines[0] if lines else type(orig).__name__
    # libpq: 'connection failed: connection to server at "h", port 5432 failed: FATAL:  password ...'
    text = text.split(" failed: ")[-1] if " failed: " in text else text
    if secret:
        text = text.replace(secret, "***")
    return " ".join(text.split())[:300]


@contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn the driver's connection and operational errors into one `DatabaseUnavailable` line naming
    host and database (never the password); anything else passes through unchanged."""
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError) as error:
        secret = make_url(url).password
        reason = _reason(error, str(secret) if secret else None)
        if str(getattr(getattr(error, "orig", None), "sqlstate", "") or "").startswith("40"):
            raise Busy(f"review database busy: {where(url)}: {reason}; nothing was saved, try again") from None
        raise DatabaseUnavailable(f"review database unavailable: {where(url)}: {reason}") from None


def make_engine(url: str, is_sqlite: bool) -> Engine:
    if not is_sqlite:
        u = make_url(url)
        connect_args: dict[str, Any] = {}
        if u.get_backend_name() == "postgresql" and "connect_timeout" not in u.query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        # hide_parameters: a failed statement's message never carries the values (texts, names) it had.
        return create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, hide_parameters=True)

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
