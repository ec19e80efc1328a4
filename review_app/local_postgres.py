"""A throwaway PostgreSQL server on a loopback port: for the tests, the load benchmark, and trying the
team setup on one machine. Needs the server binaries (`apt-get install postgresql`).

    with LocalPostgres() as pg:                 # initdb into a temporary folder, pg_ctl start
        url = pg.create_database("review")      # postgresql+psycopg://postgres@127.0.0.1:PORT/review
        pg.add_password_role("ana", "s3cret")   # a role that must give its password (scram-sha-256)
        pg.restart()                            # what maintenance does to the annotators' connections

Run as root, the server runs as the `postgres` system user (it refuses to run as root). fsync is
off: the server is thrown away at the end; nothing here tests PostgreSQL's own durability.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from core.errors import fail


def bindir() -> Path | None:
    """Debian's server binaries (the newest postgresql-NN), else initdb on PATH; None when absent."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    """One PostgreSQL server in a temporary folder, trusting its `postgres` superuser on loopback."""

    def __init__(self, *, port: int | None = None):
        self.bin = bindir()
        if self.bin is None:
            fail("PostgreSQL server binaries not installed (apt-get install postgresql)")
        self.as_user: list[str] = []
        self.base = Path(tempfile.mkdtemp(prefix="seedloop-pg-"))
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.base, ignore_errors=True)
                fail("running as root and there is no 'postgres' system user to run the server as")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.base / "data"
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.running = False
        self._pg(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--no-locale")

    @property
    def url(self) -> str:
        """The server's SQLAlchemy URL as its superuser, without a database."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}"

    def _pg(self, *args: str) -> None:
        res = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120)
        if res.returncode:
            log = (self.base / "server.log").read_text() if (self.base / "server.log").exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed: {res.stdout}{res.stderr}{log[-2000:]}")

    def start(self) -> LocalPostgres:
        self._pg(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "server.log"), "-w", "-t", "60",
                 "-o", f"-p {self.port} -k {self.base} -c listen_addresses={self.host} -c fsync=off "
                 "-c synchronous_commit=off -c max_connections=200", "start")
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: 'fast' (disconnect everyone, like a maintenance restart) or 'immediate'."""
        self._pg(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def _admin(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@{self.host}:{self.port}/{database}", autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str | None = None, *, owner: str | None = None) -> str:
        """A new empty database (owned by role `owner` when given); its URL as the superuser."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))
        return f"{self.url}/{name}"

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def add_password_role(self, role: str, password: str, *, database: str | None = None) -> None:
        """A login role that must authenticate with `password` (scram-sha-256) on loopback, owning
        `database` when given; the superuser stays trusted."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(f"postgresql://postgres@{self.host}:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role),
                                                                          sql.Literal(password)))
            if database:
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database),
                                                                           sql.Identifier(role)))
        hba = self.data / "pg_hba.conf"
        # First match wins: this role's line goes above initdb's `trust` lines.
        hba.write_text(f"host all {role} {self.host}/32 scram-sha-256\n" + hba.read_text())
        self._pg(str(self.bin / "pg_ctl"), "-D", str(self.data), "reload")
        # A reload is a signal, taken up a moment later: wait until a wrong password is refused.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                psycopg.connect(f"postgresql://{role}:not-{password}@{self.host}:{self.port}/postgres").close()
            except psycopg.OperationalError:
                return
            time.sleep(0.1)
        raise RuntimeError("pg_hba.conf reload was not taken up")

    def close(self) -> None:
        if self.running:
            subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                            "stop"], capture_output=True, timeout=120)
            self.running = False
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
