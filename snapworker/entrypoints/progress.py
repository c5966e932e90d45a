"""Progress on a terminal (rich): while the account's snapshots are listed, page by page.
Off a terminal (cron, a pipe, a log collector) nothing is drawn at all.

The gateway only calls back (``ListingProgress``: items so far, more pages to come); rich
stays above the service layer, here.
"""

from __future__ import annotations

import sys
from typing import Any


class ListingBar:
    """A transient bar on stderr while DescribeClusterSnapshots pages in. It appears once a
    listing needs a second page (one page is quick), only on a terminal, and goes when the
    last page is in (or :meth:`stop`)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._done = False

    def __call__(self, listed: int, more: bool) -> None:
        if self._bar is None:
            if self._done or not more or not sys.stderr.isatty():
                return
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed} so far"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("listing snapshots", total=None)
        self._bar.update(self._task, completed=listed)
        if not more:
            self.stop()

    def stop(self) -> None:
        self._done = True
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
