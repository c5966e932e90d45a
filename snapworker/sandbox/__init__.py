"""The sandbox: moto with snapworker's Redshift extension, and the demo estate.

Imported only by the demo and the tests (moto is the `sandbox` extra), never by a run.
"""
