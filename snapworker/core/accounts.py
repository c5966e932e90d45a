"""The one name AWS gives an account that is not a 12-digit id.

Its own tiny module so that the config checks, the core's model and the sandbox all take it
from one definition without importing anything heavier.
"""

from __future__ import annotations

SUPPORT_ALIAS = "amazon-redshift-support"
"""The account alias AWS support restores through; AWS reports it as ``AccountAlias``."""
