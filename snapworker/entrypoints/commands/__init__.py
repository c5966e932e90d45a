"""The commands, one module per concern; importing a module registers its commands on
``entrypoints.app.app``."""
