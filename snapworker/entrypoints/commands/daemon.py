"""`daemon`: ticks under a scheduler until SIGTERM/SIGINT."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from snapworker.entrypoints.app import (
    ConfigOpt,
    app,
    load,
)

if TYPE_CHECKING:
    pass


@app.command()
def daemon(config: ConfigOpt = None) -> None:
    """Run until SIGTERM/SIGINT: scheduled creates, a reconcile tick on an interval, events.

    SIGTERM/SIGINT: the action in flight finishes and is journalled, no new one starts,
    exit 0. SIGHUP: reload the config (a bad one is reported and the old one kept).
    """
    cfg = load(config)
    from snapworker.config import resolve_config_path
    from snapworker.entrypoints.daemon import Daemon
    from snapworker.logs import configure

    configure()
    d = Daemon(cfg, resolve_config_path(config))
    raise typer.Exit(d.run())
