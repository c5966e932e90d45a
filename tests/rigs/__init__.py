"""Test rigs: what the tests install into a process that the product must never carry
(crash points). Each is run as the process's entry point, e.g. ``python -m
tests.rigs.crash_cli run``."""
