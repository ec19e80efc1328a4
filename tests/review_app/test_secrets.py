"""Nothing leaked, one line on failure: no review_app command prints the database password, and a
database that cannot be reached or authenticated against is one line naming host and database, exit 2."""

from __future__ import annotations

import subprocess

import pytest

from core.errors import run_cli
from review_app.cli import main
from review_app.engine import safe_url
from review_app.local_postgres import free_port
from tests.cli_helpers import PY, REPO

PASSWORD = "Pw-7f3c-never-print-me"


@pytest.fixture
def team_db(pg_server) -> str:
    """A database owned by role `review`, which must log in with PASSWORD (scram-sha-256)."""
    url = pg_server.create_database()
    name = url.rsplit("/", 1)[1]
    pg_server.add_password_role(f"review_{name}", PASSWORD, database=name)
    yield f"postgresql+psycopg://review_{name}:{PASSWORD}@{pg_server.host}:{pg_server.port}/{name}"
    pg_server.drop_database(name)


def run(capfd, *argv: str) -> tuple[int, str]:
    """One CLI command in this process, as `python -m review_app` runs it: exit code, stdout + stderr."""
    with pytest.raises(SystemExit) as done:
        run_cli(main, list(argv))
    out, err = capfd.readouterr()
    return done.value.code, out + err


def test_no_command_prints_the_password(team_db, accepted, tmp_path, capfd, monkeypatch):
    outputs = []
    for argv in (["enqueue", "--db", team_db, "--in", str(accepted), "--reviews", "2"],
                 ["enqueue", "--db", team_db, "--in", str(accepted)],
                 ["role", "--db", team_db, "--annotator", "chris", "--role", "adjudicator"],
                 ["stats", "--db", team_db],
                 ["export", "--db", team_db, "--out", str(tmp_path / "curated.jsonl")],
                 ["export", "--db", team_db, "--out", str(tmp_path / "curated.jsonl"), "--format", "hf"],
                 ["export", "--db", team_db, "--out", str(tmp_path / "dpo.jsonl"), "--format", "dpo"]):
        code, output = run(capfd, *argv)
        assert code == 0, output
        outputs.append(output)
    monkeypatch.setenv("SEEDLOOP_REVIEW_DB", team_db)  # the URL kept out of the command line (and `ps`)
    code, output = run(capfd, "stats")
    assert code == 0 and '"total": 12' in output
    outputs.append(output)
    assert all(PASSWORD not in out for out in outputs)
    assert f"into {safe_url(team_db)}" in outputs[0] and ":***@" in outputs[0]
    assert "enqueued 12 new items" in outputs[0] and "enqueued 0 new items (12 already queued)" in outputs[1]
    for path in tmp_path.rglob("*"):  # nor do the files they write (the dataset card, the exports)
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_wrong_password_is_one_line_exit_2(team_db, capfd):
    wrong = team_db.replace(PASSWORD, "not-the-password")
    code, output = run(capfd, "stats", "--db", wrong)
    database = team_db.rsplit("/", 1)[1]
    assert code == 2 and output.count("\n") == 1
    assert output.startswith(f"error: review database unavailable: database '{database}' on host 127.0.0.1:")
    assert "password authentication failed" in output and "not-the-password" not in output


def test_unreachable_or_missing_database_is_one_line_exit_2(pg_server, tmp_path, accepted):
    """In a real process: no SQLAlchemy traceback, exit 2, host and database named, no password."""
    closed = f"postgresql+psycopg://review:{PASSWORD}@127.0.0.1:{free_port()}/teamdb"
    missing = f"postgresql+psycopg://postgres:{PASSWORD}@{pg_server.host}:{pg_server.port}/no_such_db"
    for url, why in ((closed, "refused"), (missing, 'database "no_such_db" does not exist')):
        res = subprocess.run([PY, "-m", "review_app", "enqueue", "--db", url, "--in", str(accepted)], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and res.stdout == ""
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
        assert res.stderr.startswith("error: review database unavailable: database '")
        assert "on host 127.0.0.1:" in res.stderr and why in res.stderr and PASSWORD not in res.stderr
    res = subprocess.run([PY, "-m", "review_app", "stats", "--db", f"postgresql+psycopg://u:{PASSWORD}@h:notaport/x"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and PASSWORD not in res.stderr, res.stderr
