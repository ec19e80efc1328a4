"""Sign-in identities: the users file (argon2 hashes, made with `python -m review_app users`), the
trusted proxy header, and which way the app signs people in."""

from __future__ import annotations

import stat
import subprocess

import pytest

from core.errors import UserError
from review_app.auth import SignInLimiter, UsersFile, choose_mode, header_identity
from review_app.cli import main
from tests.cli_helpers import PY, REPO


def test_users_cli_add_list_remove(tmp_path, capsys):
    users = tmp_path / "users.txt"
    # one real process: the password comes on stdin and is never echoed
    res = subprocess.run([PY, "-m", "review_app", "users", "add", "--file", str(users), "ana", "--password-stdin"],
                         cwd=REPO, input="ana-password\n", capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"ana: password set in {users}\n" and "ana-password" not in res.stdout + res.stderr
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    added = UsersFile.load(users)
    added.set_password("bob", "bob-password")
    added.save()
    text = users.read_text()
    assert "ana-password" not in text and "bob-password" not in text and text.count("$argon2id$") == 2
    loaded = UsersFile.load(users)
    assert loaded.verify("ana", "ana-password") and not loaded.verify("ana", "bob-password")
    assert not loaded.verify("bob", "ana-password") and not loaded.verify("carol", "ana-password")
    assert main(["users", "list", "--file", str(users)]) == 0 and capsys.readouterr().out == "ana\nbob\n"
    assert main(["users", "remove", "--file", str(users), "bob"]) == 0
    assert sorted(UsersFile.load(users).hashes) == ["ana"]
    with pytest.raises(UserError, match="--password-stdin"):  # no terminal to ask on, no --password-stdin
        main(["users", "add", "--file", str(users), "cat"])


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


def test_sign_in_limiter_per_name_and_per_address():
    limiter = SignInLimiter(per_name=3, per_address=5, window_s=60)
    for t in range(3):
        assert limiter.wait("ana", "10.0.0.7", now=100 + t) == 0
        limiter.failed("ana", "10.0.0.7", now=100 + t)
    assert limiter.wait("ana", "10.0.0.7", now=103) == 57  # the first failure leaves the window at 160
    assert limiter.wait("ana", "10.0.0.9", now=103) == 57  # per name, from any address
    assert limiter.wait("bob", "10.0.0.7", now=103) == 0  # another name, same address: 3 of 5 so far
    limiter.failed("bob", "10.0.0.7", now=104)
    limiter.failed("cat", "10.0.0.7", now=105)
    assert limiter.wait("dan", "10.0.0.7", now=106) == 54  # the address has 5 failures: everyone there waits
    assert limiter.wait("dan", None, now=106) == 0  # local connections are one other address
    limiter.succeeded("bob")  # a good password clears the name's count, not the address's
    assert limiter.wait("bob", "10.0.0.8", now=106) == 0 and limiter.wait("bob", "10.0.0.7", now=106) == 54
    assert limiter.wait("ana", "10.0.0.7", now=160) == 0  # a minute later the first failures have left the window
