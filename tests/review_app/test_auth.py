"""Sign-in identities: the users file (argon2 hashes, made with `python -m review_app users`), the
trusted proxy header, and which way the app signs people in."""

from __future__ import annotations

import stat
import subprocess

import pytest

from core.errors import UserError
from review_app.auth import UsersFile, choose_mode, header_identity
from tests.cli_helpers import PY, REPO
from tests.review_app.test_store import cli


def test_users_cli_add_list_remove(tmp_path):
    users = tmp_path / "users.txt"
    for name, password in (("ana", "ana-password"), ("bob", "bob-password")):
        res = subprocess.run([PY, "-m", "review_app", "users", "add", "--file", str(users), name, "--password-stdin"],
                             cwd=REPO, input=password + "\n", capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout == f"{name}: password set in {users}\n" and password not in res.stdout + res.stderr
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    text = users.read_text()
    assert "ana-password" not in text and text.count("$argon2id$") == 2
    loaded = UsersFile.load(users)
    assert loaded.verify("ana", "ana-password") and not loaded.verify("ana", "bob-password")
    assert not loaded.verify("bob", "ana-password") and not loaded.verify("carol", "ana-password")
    assert cli("users", "list", "--file", str(users)).stdout == "ana\nbob\n"
    assert cli("users", "remove", "--file", str(users), "bob").returncode == 0
    assert sorted(UsersFile.load(users).hashes) == ["ana"]
    res = cli("users", "add", "--file", str(users), "cat")  # no terminal, no --password-stdin
    assert res.returncode == 2 and "--password-stdin" in res.stderr


def test_a_bad_users_file_is_one_line_naming_file_line_and_field(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("# team\nana:$argon2id$v=19$m=65536,t=3,p=4$abc$def\nbob plain-password\n")
    with pytest.raises(UserError, match=rf"^{users}:3: field 'name': expected NAME:HASH$"):
        UsersFile.load(users)
    users.write_text("ana:plain-password\n")
    with pytest.raises(UserError, match=rf"^{users}:1: field 'hash': not an argon2 hash"):
        UsersFile.load(users)
    with pytest.raises(UserError, match="no users file here"):
        UsersFile.load(tmp_path / "missing.txt")


def test_proxy_header_and_mode_choice():
    assert header_identity({"X-Forwarded-User": " ana "}, "X-Forwarded-User") == "ana"
    assert header_identity({"x-forwarded-user": "bob@example.org"}, "X-Forwarded-User") == "bob@example.org"
    assert header_identity({"X-Other": "ana"}, "X-Forwarded-User") is None
    assert header_identity({"X-Forwarded-User": ""}, "X-Forwarded-User") is None
    assert choose_mode(users_file="u.txt", header=None, oidc=True) == "users"
    assert choose_mode(users_file=None, header="X-Forwarded-User", oidc=True) == "header"
    assert choose_mode(users_file=None, header=None, oidc=True) == "oidc"
    assert choose_mode(users_file=None, header=None, oidc=False) == "open"
    with pytest.raises(UserError, match="not both"):
        choose_mode(users_file="u.txt", header="X-Forwarded-User", oidc=False)
