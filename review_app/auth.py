"""Who an annotator is: a users file of argon2 password hashes, a trusted reverse-proxy header, or
Streamlit's OIDC sign-in (`st.login`). No Streamlit import here; the app asks.

    python -m review_app users add --file review_users.txt ana      # asks for ana's password (twice)
    users = UsersFile.load("review_users.txt")
    users.verify("ana", password)                  # True only for ana's own password
    header_identity(st.context.headers, "X-Forwarded-User")   # the name a trusted proxy vouches for
    choose_mode(users_file=..., header=..., oidc=...)          # "users" | "header" | "oidc" | "open"
    limiter = SignInLimiter(); limiter.wait("ana", "10.0.0.7", now)  # seconds until another try is allowed

The users file: one `name:hash` per line (`#` comments and blank lines allowed), the hash from
argon2-cffi (argon2id, its default cost). It holds no password; still, keep it readable by the app
alone (it is written with mode 0600). The store records whatever name the app signed in: identity
is enforced here, at the app, which is the only way annotators reach the database.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import fail

MODES = ("users", "header", "oidc", "open")
MAX_NAME = 100
# Verified when the name is unknown, so a wrong name costs as long as a wrong password (no probing
# for which names exist by timing).
_DUMMY = "$argon2id$v=19$m=65536,t=3,p=4$3osabANoBJxemp806w79/A$9CW73Q6oxgZJvLfV+g6onnIvuc3v0avkg87+L1mThbY"


def _hasher():  # -> argon2.PasswordHasher (imported when a users file is used)
    from argon2 import PasswordHasher

    return PasswordHasher()


def check_name(name: str, where: str = "annotator name") -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME or ":" in name or any(c in name for c in "\r\n\t"):
        fail(f"{where}: must be 1 to {MAX_NAME} characters, without ':' or line breaks")
    return name


@dataclass
class UsersFile:
    """Annotators and their password hashes, as read from (and written to) `path`."""

    path: Path
    hashes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, *, missing_ok: bool = False) -> UsersFile:
        p = Path(path).expanduser()
        if not p.is_file():
            if missing_ok and not p.exists():
                return cls(p)
            fail(f"{p}: no users file here (make one with `python -m review_app users add --file {p} NAME`)")
        hashes: dict[str, str] = {}
        for n, raw in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, hashed = line.partition(":")
            if not sep:
                fail(f"{p}:{n}: field 'name': expected NAME:HASH")
            name = check_name(name, f"{p}:{n}: field 'name'")
            if not hashed.startswith("$argon2"):
                fail(f"{p}:{n}: field 'hash': not an argon2 hash (make entries with `python -m review_app users add`)")
            if name in hashes:
                fail(f"{p}:{n}: field 'name': '{name}' appears twice")
            hashes[name] = hashed
        return cls(p, hashes)

    def verify(self, name: str, password: str) -> bool:
        """True when `password` is `name`'s own; the same work is done for an unknown name."""
        from argon2.exceptions import InvalidHashError, VerificationError

        hashed = self.hashes.get((name or "").strip())
        try:
            return _hasher().verify(hashed or _DUMMY, password or "") and hashed is not None
        except (VerificationError, InvalidHashError):
            return False

    def set_password(self, name: str, password: str) -> None:
        name = check_name(name)
        if len(password) < 8:
            fail("password: use at least 8 characters")
        self.hashes[name] = _hasher().hash(password)

    def remove(self, name: str) -> None:
        if name not in self.hashes:
            fail(f"{self.path}: no user '{name}'")
        del self.hashes[name]

    def save(self) -> None:
        """Write the file atomically, readable and writable by its owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "# seedloop review users: NAME:ARGON2-HASH (python -m review_app users add)\n" + "".join(
            f"{n}:{h}\n" for n, h in sorted(self.hashes.items()))
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def header_identity(headers: Mapping[str, str] | None, header: str) -> str | None:
    """The annotator name a trusted reverse proxy put in `header` (None: the header is absent).
    Only safe when the app is reachable through that proxy alone (it must also strip the header
    from what clients send)."""
    if not headers:
        return None
    value = headers.get(header)
    if value is None:  # plain dicts in tests; Streamlit's headers are case-insensitive already
        value = next((v for k, v in headers.items() if k.lower() == header.lower()), None)
    if value is None or not str(value).strip():
        return None
    return check_name(str(value), f"header {header}")


def choose_mode(*, users_file: str | None, header: str | None, oidc: bool) -> str:
    """How annotators sign in: a users file, else a proxy header, else OIDC when `[auth]` is in the
    Streamlit secrets, else open (any name, for one person on their own machine)."""
    if users_file and header:
        fail("choose one way to sign in: --users FILE or --auth-header NAME, not both")
    if users_file:
        return "users"
    if header:
        return "header"
    return "oidc" if oidc else "open"


@dataclass
class SignInLimiter:
    """Failed sign-ins counted per name and per address over a sliding window: after `per_name`
    failures for one name, or `per_address` from one address, within `window_s` seconds, further tries
    are refused (without checking the password) until the oldest failure leaves the window. A
    successful sign-in clears its name's failures. One per app process, shared by its sessions
    (Streamlit runs each in a thread, hence the lock)."""

    per_name: int = 5
    per_address: int = 20
    window_s: float = 900.0
    _failed: dict[tuple[str, str], deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _keys(self, name: str, address: str | None) -> list[tuple[tuple[str, str], int]]:
        return [(("name", name.strip()), self.per_name), (("address", address or "local"), self.per_address)]

    def wait(self, name: str, address: str | None, now: float) -> float:
        """Seconds until `name` may try again from `address`; 0 when a try is allowed now."""
        longest = 0.0
        with self._lock:
            for key, limit in self._keys(name, address):
                times = self._failed.get(key)  # .get: a name that never failed adds no entry
                while times and times[0] <= now - self.window_s:
                    times.popleft()
                if times and len(times) >= limit:
                    longest = max(longest, times[-limit] + self.window_s - now)
        return longest

    def failed(self, name: str, address: str | None, now: float) -> None:
        with self._lock:
            for key, _ in self._keys(name, address):
                self._failed[key].append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failed.pop(("name", name.strip()), None)
