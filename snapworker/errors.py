"""One root for every refusal snapworker raises, so the command line maps each to an exit code
in one place (``exit_code``) instead of catching a dozen unrelated classes.

- :class:`SnapworkerError`: something was refused or failed; exit 1 when it reaches the top
  (AWS refused, an action failed: the setup may be fine, the run was not).
- :class:`UsageError`: the setup must be fixed first (config, state DB, an unknown policy or
  snapshot named on the command line); exit 2, and nothing in AWS was changed.

The pure core raises no class of this package (it imports nothing from it); where the core
signals a refusal (``core.explain.UnknownSnapshot``) the service or entrypoint turns it into one
of these.
"""

from __future__ import annotations


class SnapworkerError(Exception):
    """The root. ``exit_code`` is what the CLI exits with when this reaches it."""

    exit_code: int = 1


class UsageError(SnapworkerError):
    """Bad usage or configuration: the setup needs fixing before a run can act (exit 2)."""

    exit_code = 2
