"""structlog set-up: JSON lines off a terminal (for log shippers), readable lines on one.

Logs go to stderr; reports go to stdout, so ``plan --format json | jq`` stays clean.

structlog (with rich, which it pulls in for tracebacks) costs about a tenth of a second to
import, and a ``run`` from cron with nothing to do logs nothing: so ``configure`` only
records the settings, and structlog is imported and configured by the first log call.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from typing import Any

_SECRET_KEYS = frozenset({"password", "dbpassword", "secret", "token", "aws_secret_access_key"})


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: a field named like a secret is never rendered."""
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
    return event


_settings: dict[str, Any] = {"level": "info", "json": None, "file": None}
_configured = False


def configure(level: str = "info", json: bool | None = None, file: Any = None) -> None:
    """Record the log settings; they take effect at the first log call (see above).
    ``file``: where log lines go (default: stderr)."""
    global _configured
    _settings.update(level=level, json=json, file=file)
    _configured = False


def _apply() -> None:
    global _configured
    import logging

    import structlog

    json = _settings["json"]
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(str(_settings["level"]).upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_settings["file"] or sys.stderr),
        cache_logger_on_first_use=False,
    )
    _configured = True


class _LazyLogger:
    """A structlog bound logger made at its first use (``info``, ``warning``, ...)."""

    def __init__(self, bound: dict[str, Any]) -> None:
        self._bound = bound
        self._real: Any = None

    def _logger(self) -> Any:
        if self._real is None or not _configured:
            if not _configured:
                _apply()
            import structlog

            self._real = structlog.get_logger("snapworker").bind(**self._bound)
        return self._real

    def bind(self, **more: Any) -> _LazyLogger:
        return _LazyLogger({**self._bound, **more})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger(), name)


def get_logger(**bound: Any) -> Any:
    return _LazyLogger(dict(bound))
