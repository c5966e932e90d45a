"""Many threads of one process writing one SQLite state DB (a fleet's pairs, each with its
clusters' threads): they queue for SQLite's one writer inside the process, so none meets
"database is locked" however short the busy timeout (it still bounds other processes)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from snapworker.adapters.store.repository import open_store


def test_sixteen_threads_of_one_process_never_see_database_is_locked(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}", busy_timeout_ms=20)
    at = datetime(2026, 11, 27, tzinfo=UTC)
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def pair(n: int) -> None:
        scoped = store.scoped(f"t{n}", f"{n:012d}", "us-east-1")
        start.wait()
        try:
            for i in range(40):
                scoped.record_grant(f"sw-snap-{i}", "111122223333", at)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=pair, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    summary = store.owned_summary()
    assert len(summary.open_grants) == 16 * 40
    store.close()
