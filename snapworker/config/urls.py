"""Reading a state DB URL without importing SQLAlchemy: whether it is a SQLite file (and which),
whether it is in memory, and how to show it (password masked).

``snapworker validate`` checks a ``sqlite:`` URL with :func:`parse_sqlite_url` and never loads
the database layer; any other URL is SQLAlchemy's to read (:func:`masked_url` imports it then).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote

__all__ = ["SqliteUrl", "masked_url", "parse_sqlite_url", "sqlite_file"]

# SQLAlchemy's own URL pattern (sqlalchemy.engine.url._parse_url), so both read a URL alike.
_URL = re.compile(
    r"""
    (?P<name>[\w\+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?:(?:\[(?P<ipv6host>[^/\?]+)\]|(?P<ipv4host>[^/:\?]+))?(?::(?P<port>[^/\?]*))?)?
    (?:/(?P<database>[^\?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)

_STDLIB_SQLITE = frozenset({"sqlite", "sqlite+pysqlite"})


@dataclass(frozen=True)
class SqliteUrl:
    """A ``sqlite:`` URL on the stdlib module: a database name and its query options."""

    drivername: str
    database: str  # "" for an in-memory database
    query: Mapping[str, str]

    @property
    def uri(self) -> bool:
        return self.query.get("uri", "").lower() in ("true", "1", "yes", "on")

    @property
    def in_memory(self) -> bool:
        """Each new connection would be a new, empty database: one connection is shared."""
        if self.database in ("", ":memory:"):
            return True
        if self.uri:
            return (
                self.query.get("mode") == "memory"
                or "mode=memory" in self.database
                or self.database.startswith("file::memory:")
            )
        return False


def parse_sqlite_url(url: str) -> SqliteUrl | None:
    """The URL when it is a plain SQLite one (``sqlite://`` or ``sqlite+pysqlite://``, no user,
    host or port); None for anything else, which SQLAlchemy reads (with its own errors for a
    malformed URL)."""
    m = _URL.match(url)
    if m is None or m.group("name") not in _STDLIB_SQLITE:
        return None
    if any(m.group(k) for k in ("username", "password", "ipv4host", "ipv6host", "port")):
        return None
    query: dict[str, str] = {}
    for key, value in parse_qsl(m.group("query") or ""):
        if key in query:
            return None  # a repeated key: let SQLAlchemy say what it makes of it
        query[key] = value
    return SqliteUrl(m.group("name"), unquote(m.group("database") or ""), query)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None: not SQLite, in memory, or a ``file:`` URI)."""
    scheme = url.partition("://")[0]
    if scheme != "sqlite" and not scheme.startswith("sqlite+"):
        return None
    parsed = parse_sqlite_url(url.replace(scheme, "sqlite", 1))
    if parsed is None:
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if parsed.query.get("mode") == "memory":
        return None
    return Path(database)


def masked_url(url: object) -> str:
    """The URL as it may be shown: any password replaced by ``***``."""
    text = str(url) if not isinstance(url, str) else url
    if not isinstance(url, str):
        render = getattr(url, "render_as_string", None)  # a SQLAlchemy URL object
        if callable(render):
            return str(render(hide_password=True))
    if parse_sqlite_url(text) is not None:
        return text  # no password in it
    try:
        # Imported here only: a SQLite URL (above) is shown without loading SQLAlchemy.
        from sqlalchemy.engine import make_url

        return make_url(text).render_as_string(hide_password=True)
    except Exception:
        # Unparseable: where the password would be is anyone's guess, so show the scheme only.
        scheme, sep, _rest = text.partition("://")
        return f"{scheme}://(rest not shown)" if sep else "(unparseable URL, not shown)"
