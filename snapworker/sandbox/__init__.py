"""The sandbox: moto with snapworker's Redshift extension, and the demo estate.

Imported only by ``snapworker demo``, ``snapworker sandbox`` and the tests (moto is the
``sandbox`` extra), never by a run, a plan or the daemon (``tests/test_sandbox_isolation.py``).
"""
