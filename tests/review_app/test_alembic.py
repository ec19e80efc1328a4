"""Migrations are Alembic's: a fresh database is at head, and a database made by today's schema (the
hand-written migrations 1-3, frozen in legacy_schema_v3.py, with a history written by that store in
data/review_v3_rows.json) is upgraded in place, keeping every decision and vote; on both engines."""

from __future__ import annotations

import json
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table, create_engine, inspect, text

from core.records import content_version
from review_app.schema import HEAD, MIGRATIONS_DIR, migrate
from review_app.store import ReviewStore
from tests.review_app import legacy_schema_v3

ROWS = json.loads((Path(__file__).parent / "data" / "review_v3_rows.json").read_text(encoding="utf-8"))
TABLES = ("items", "decisions", "votes", "leases", "roles")  # in foreign-key order


def engine_for(db_url: str):
    return create_engine(db_url if "://" in db_url else f"sqlite:///{db_url}")


def make_legacy(db_url: str) -> None:
    """A database exactly as today's store leaves it: the old runner's migrations, then its rows."""
    engine = engine_for(db_url)
    with engine.begin() as conn:
        legacy_schema_v3.migrate(conn)
        md = MetaData()
        for name in TABLES:
            table = Table(name, md, autoload_with=conn)
            if ROWS[name]:
                conn.execute(table.insert(), ROWS[name])
        if conn.dialect.name == "postgresql":  # as if the rows had been inserted one by one
            for name in ("items", "decisions"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"))
    engine.dispose()


def columns(db_url: str) -> dict[str, dict[str, tuple[str, bool]]]:
    engine = engine_for(db_url)
    with engine.connect() as conn:
        insp = inspect(conn)
        out = {t: {c["name"]: (str(c["type"]), c["nullable"]) for c in insp.get_columns(t)} for t in TABLES}
    engine.dispose()
    return out


def test_head_constant_is_the_newest_migration():
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(cfg).get_heads() == [HEAD]


def test_a_fresh_database_is_at_head_and_opening_again_applies_nothing(db_url):
    store = ReviewStore(db_url)
    with store.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    assert {"items", "decisions", "votes", "leases", "roles", "alembic_version"} <= tables
    assert "schema_migrations" not in tables
    ReviewStore(db_url).close()  # opening again breaks nothing
    with store.engine.begin() as conn:
        assert migrate(conn) == []


def test_upgrade_from_todays_schema_keeps_every_vote(db_url, tmp_path):
    make_legacy(db_url)
    store = ReviewStore(db_url)  # stamps the old runner's version 3 as 0003, then upgrades
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
        assert not inspect(conn).has_table("schema_migrations")
        votes = [dict(r) for r in conn.execute(text("SELECT * FROM votes ORDER BY decision_id")).mappings()]
        roles = [dict(r) for r in conn.execute(text("SELECT annotator, role FROM roles")).mappings()]
    # every vote, decision and role as it was
    assert votes == sorted(ROWS["votes"], key=lambda v: v["decision_id"])
    assert roles == [{"annotator": r["annotator"], "role": r["role"]} for r in ROWS["roles"]]
    log = store.decision_log()
    assert len(log) == len(ROWS["decisions"])
    for new, old in zip(log, ROWS["decisions"], strict=True):
        assert {k: new[k] for k in old} == old
    # item states as they were; what is still waiting shows the original again
    by_id = {i["id"]: i for i in ROWS["items"]}
    for item in store.list_items():
        old = by_id[item.id]
        assert (item.status, item.needed, item.decided) == (old["status"], old["needed"], old["decided"])
        if item.status in ("pending", "disputed"):
            assert item.is_original and item.version == old["original_version"]
        else:
            assert item.version == old["version"]
    # phases of the old votes: independent while the item lacked its votes and was shown the original
    phases = {(d["item_id"], d["annotator"]): d["phase"] for d in log if d["action"] != "undo"}
    assert phases[1, "ana"] == phases[1, "bob"] == "independent" and phases[1, "cat"] == "tiebreak"
    assert phases[3, "eve"] == "adjudication"
    # and work goes on: the disputed item goes to the adjudicator, new ids follow the old ones
    disputed = store.claim("eve")
    assert disputed.status == "disputed"
    versions = store.versions(disputed.id)
    store.decide(disputed.id, "eve", "approve", version=versions[0]["version"], view=disputed.view)
    assert store.get(disputed.id).status == "approved"
    assert store.decision_log()[-1]["id"] > max(d["id"] for d in ROWS["decisions"])
    item = store.get(7)  # dan's edit, resolved before the upgrade, exports as it did
    assert (item.text, item.labels) == ("Dan's corrected text.", {"label": "neutral"})
    assert item.version == content_version("Dan's corrected text.", {"label": "neutral"})


def test_an_upgraded_database_has_the_schema_of_a_fresh_one(db_url, request, tmp_path):
    """Same tables and columns (names, types, nullability) whichever way a database came to be."""
    if "://" in db_url:
        server = request.getfixturevalue("pg_server")
        legacy_url = server.create_database()
        request.addfinalizer(lambda: server.drop_database(legacy_url.rsplit("/", 1)[1]))
    else:
        legacy_url = str(tmp_path / "legacy.db")
    engine = engine_for(legacy_url)
    with engine.begin() as conn:
        legacy_schema_v3.migrate(conn)
    engine.dispose()
    ReviewStore(legacy_url).close()
    ReviewStore(db_url).close()
    assert columns(legacy_url) == columns(db_url)
