"""snapworker: keeps the manual snapshots of Amazon Redshift clusters on policy."""

__version__ = "0.1.0"
