"""Entrypoints: the command line, the daemon, the demo."""
