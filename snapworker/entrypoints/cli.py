"""The command line: the Typer app with every command registered, and ``main``.

The app and what commands share are in ``entrypoints/app.py``; the commands, by concern, in
``entrypoints/commands/``. Importing them here registers them (each module's imports of
boto3, the store and the rest are made inside its commands, so this costs little).
"""

from __future__ import annotations

import sys

from snapworker.entrypoints.app import app, report
from snapworker.entrypoints.commands import (  # noqa: F401  (registers the commands)
    access,
    daemon,
    holds,
    html_report,
    inspect,
    sandbox,
    schema,
    ticks,
)
from snapworker.errors import SnapworkerError

__all__ = ["app", "main"]


def main() -> None:
    try:
        # "snapworker" also under ``python -m snapworker``: the name the usage lines show and
        # the one command a completion script (--show-completion) registers for.
        app(prog_name="snapworker")
    except SnapworkerError as e:  # what a command let through: still one line, its exit code
        sys.exit(report(e))


if __name__ == "__main__":
    main()
