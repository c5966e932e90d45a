"""``python -m tests.rigs.crash_cli <snapworker args>``: the ``snapworker`` command with the
crash points of :mod:`tests.rigs.crash` installed (``SNAPWORKER_KILL_AT=before:N|after:N``).

``tests/e2e_support.py`` runs the CLI through this entry whenever a test sets
``SNAPWORKER_KILL_AT``; the repository root must be on ``PYTHONPATH`` (it sets it).
"""

from __future__ import annotations

import sys

from snapworker.entrypoints.cli import main as snapworker_main
from tests.rigs import crash


def main() -> None:
    crash.install()
    sys.argv[0] = "snapworker"
    snapworker_main()


if __name__ == "__main__":
    main()
