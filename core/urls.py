"""URLs as they may be shown: `redact_url("postgresql+psycopg://ana:s3cret@db:5432/seedloop")` → `postgresql+psycopg://ana:***@db:5432/seedloop`.

Every printed, logged or recorded URL (database, Redis, API) goes through this, so a password never
reaches a terminal, a log file or a manifest.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def redact_url(url: str | None) -> str | None:
    """`url` with its password shown as `***` (the user name stays, to say who connects); None and '' pass through."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return parts._replace(netloc=f"{name}:***@{host}").geturl()
