"""The one error the state store raises, and the one-line reason it gives.

Kept apart from the engine and the repositories (and free of SQLAlchemy) so that the command
line can name :class:`StateStoreError` without importing the database layer.
"""

from __future__ import annotations

from snapworker.errors import UsageError

__all__ = ["StateStoreError", "describe_error"]


class StateStoreError(UsageError):
    """The state DB cannot be opened, migrated, read or written; the message names the URL
    (password masked) and says why."""


def describe_error(exc: BaseException) -> str:
    """A one-line reason: the DBAPI's own message rather than SQLAlchemy's long wrapper."""
    orig = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError wraps the DBAPI's error
    if isinstance(orig, BaseException) and type(exc).__module__.startswith("sqlalchemy"):
        return f"{type(orig).__name__}: {orig}"
    message = str(exc).split("\n", 1)[0]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
