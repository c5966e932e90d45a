"""The state DB through SQLModel: what it stores, what it costs at start, how it shows URLs.

- Format: rows written through the SQLModel models (an engine of their own on the same
  database) read back alike through the store, and rows the store writes read back alike
  through the models; on SQLite the stored text is what state DBs always held (a datetime
  is UTC wall time with microseconds, a boolean 0/1), so existing state DBs keep working.
  Every table the store writes is covered, on SQLite and on PostgreSQL.
- Start-up: the commands that never touch the state DB (``--help``, ``validate``,
  ``iam-policy``) import no SQLAlchemy, SQLModel or Alembic; a run on a current schema
  imports no Alembic and costs one revision query before its own work (no migration).
- URLs and errors: a SQLite URL is checked and shown without SQLAlchemy; passwords masked.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from snapworker.adapters.store.engine import open_database
from snapworker.adapters.store.errors import describe_error
from snapworker.adapters.store.repository import DriftItem, StateStore, open_store
from snapworker.adapters.store.schema import ensure_schema
from snapworker.config.urls import masked_url
from snapworker.core.model import Action, OwnedRecord
from tests.e2e_support import Sandbox
from tests.pg_support import pg_database  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 27, 3, 0, 0, 250000, tzinfo=UTC)
PLUS2 = timezone(timedelta(hours=2))
HEAVY = {"sqlalchemy", "sqlmodel", "alembic"}


def models() -> list[Any]:
    from snapworker.adapters.store import tables

    return [
        tables.OwnedSnapshotRow,
        tables.GrantRow,
        tables.CopiedSourceRow,
        tables.JournalRow,
        tables.RunRow,
        tables.LeaseRow,
        tables.DriftRow,
        tables.VerificationRow,
        tables.SnapshotFiguresRow,
    ]


def by_models(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every table as the SQLModel models read it, rows in primary key order."""
    from sqlalchemy import create_engine
    from sqlmodel import Session, select

    engine = create_engine(url)
    try:
        with Session(engine) as s:
            out = {}
            for model in models():
                keys = list(model.__table__.primary_key.columns)
                rows = s.exec(select(model).order_by(*keys)).all()
                out[model.__tablename__] = [row.model_dump() for row in rows]
            return out
    finally:
        engine.dispose()


def write_with_models(url: str, rows: list[Any]) -> None:
    from sqlalchemy import create_engine
    from sqlmodel import Session

    engine = create_engine(url)
    try:
        with Session(engine) as s:
            s.add_all(rows)
            s.commit()
    finally:
        engine.dispose()


def model_rows() -> list[Any]:
    """One or more rows of every table, with datetimes in other zones, NULLs and booleans."""
    from snapworker.adapters.store import tables as t

    local = datetime(2026, 11, 1, 5, 30, 0, 123456, tzinfo=PLUS2)
    return [
        t.OwnedSnapshotRow(
            owner_account="",
            region="",
            snapshot_id="snap-1",
            policy="p",
            cluster="c",
            made_for="copy",
            source_id="rs:auto-1",
            data_time=local,
            fire_time=T0,
            recorded_at=T0,
            adopted=True,
            deleted_at=None,
        ),
        t.OwnedSnapshotRow(
            owner_account="",
            region="",
            snapshot_id="snap-2",
            policy="p",
            cluster="c",
            made_for="create",
            recorded_at=local,
            adopted=False,
            deleted_at=T0,
        ),
        t.GrantRow(
            owner_account="",
            region="",
            snapshot_id="snap-1",
            account="111122223333",
            granted_at=local,
        ),
        t.GrantRow(
            owner_account="",
            region="",
            snapshot_id="snap-1",
            account="support",
            granted_at=None,
            revoked_at=T0,
        ),
        t.CopiedSourceRow(
            owner_account="",
            region="",
            policy="p",
            source_id="rs:auto-1",
            target_id="snap-1",
            copied_at=T0,
        ),
        t.RunRow(mode="run", started_at=T0, status="running", pid=7),
        t.RunRow(
            mode="daemon",
            started_at=T0,
            finished_at=local,
            status="failed",
            actions_ok=2,
            actions_failed=1,
            api_calls='{"CopyClusterSnapshot": 3}',
            error="1 action failed",
            pid=8,
        ),
        t.JournalRow(
            owner_account="",
            region="",
            run_id=2,
            key="p|copy|snap-1",
            policy="p",
            cluster="c",
            kind="copy",
            snapshot_id="snap-1",
            source_id="rs:auto-1",
            reason="due",
            status="pending",
            started_at=local,
        ),
        t.JournalRow(
            owner_account="",
            region="",
            run_id=2,
            key="p|share|snap-1|111122223333",
            policy="p",
            cluster="c",
            kind="share",
            snapshot_id="snap-1",
            account="111122223333",
            reason="policy lists it",
            status="failed",
            started_at=T0,
            finished_at=T0,
            error="Throttling: slow down",
            attempts=2,
        ),
        t.LeaseRow(name="policy:p", holder="host:1", acquired_at=local, expires_at=T0),
        t.DriftRow(
            owner_account="",
            region="",
            run_id=2,
            policy="p",
            cluster="c",
            snapshot_id="snap-1",
            account="999",
            seen_at=local,
            revoked=True,
        ),
        t.DriftRow(
            owner_account="",
            region="",
            run_id=2,
            policy="p",
            cluster="c",
            snapshot_id="snap-1",
            account="888",
            seen_at=T0,
        ),
        t.VerificationRow(
            owner_account="",
            region="",
            policy="p",
            cluster="c",
            snapshot_id="snap-1",
            fire_time=T0,
            scratch_cluster="sw-verify-1",
            status="passed",
            started_at=T0,
            finished_at=local,
            detail='{"rows": {"ok": true}}',
            scratch_deleted_at=T0,
        ),
        t.SnapshotFiguresRow(
            owner_account="",
            region="",
            snapshot_id="snap-1",
            policy="p",
            cluster="c",
            figures='{"sales": 3}',
            recorded_at=T0,
        ),
    ]


def assert_aware_utc(dump: dict[str, list[dict[str, Any]]]) -> None:
    for rows in dump.values():
        for row in rows:
            for name, value in row.items():
                if isinstance(value, datetime):
                    assert value.tzinfo == UTC, (name, value)


# ------------------------------------------------------------------------------ both ways


def test_rows_written_by_the_models_read_alike_by_the_store(store_url: str) -> None:
    open_store(store_url).close()  # migrated
    write_with_models(store_url, model_rows())
    expected = by_models(store_url)
    assert all(expected.values()), "every table has rows"
    assert_aware_utc(expected)
    with open_store(store_url) as store:
        # and through the store's own reads
        state = store.load_state()
        assert state.owned["snap-1"].data_time == datetime(2026, 11, 1, 3, 30, 0, 123456, UTC)
        assert state.owned["snap-2"].deleted_at == T0
        assert [g.account for g in state.grants] == ["111122223333"]
        [pending] = state.pending
        assert pending.key == "p|copy|snap-1" and pending.source_id == "rs:auto-1"
        summary = store.owned_summary()
        views = {v.snapshot_id: v for v in summary.owned["p"]["c"]}
        assert views["snap-1"].adopted is True and views["snap-2"].adopted is False
        assert views["snap-2"].data_time is None
        assert {g.account for g in summary.open_grants} == {"111122223333"}
        assert store.copied_sources("p") == {"rs:auto-1"}
        runs = store.recent_runs()
        assert runs[0].api_calls == {"CopyClusterSnapshot": 3}
        assert [f.error for f in runs[0].failures] == ["Throttling: slow down"]
        assert runs[1].finished_at is None
        assert store.lease_holder("policy:p") == "host:1"
        [verification] = store.verifications()
        assert verification.detail == {"rows": {"ok": True}}
        assert verification.scratch_deleted_at == T0
        assert store.figures_for("snap-1") == {"sales": 3}


def store_writes_everything(store: StateStore) -> None:
    local = datetime(2026, 11, 1, 5, 30, 0, 123456, tzinfo=PLUS2)
    store.record_owned(
        OwnedRecord("snap-1", "p", "c", "copy", local, source_id="rs:auto-1", fire_time=T0),
        adopted=True,
        at=T0,
    )
    store.record_owned(OwnedRecord("snap-2", "p", "c", "create", None), at=local)
    store.mark_deleted("snap-2", T0)
    store.record_grant("snap-1", "111122223333", local)
    store.record_revoke("snap-1", "support", T0)
    store.record_copied_source("p", "rs:auto-1", "snap-1", T0)
    run = store.begin_run("daemon", 8, T0)
    entry = store.journal_start(
        run, Action("p", "c", "share", "snap-1", "policy lists it", account="111"), local
    )
    store.journal_finish(entry, "failed", None, "Throttling: slow down", T0)
    store.journal_start(
        run, Action("p", "c", "copy", "snap-1", "due", source="rs:auto-1"), T0 + timedelta(1)
    )
    store.acquire_lease("policy:p", "host:1", timedelta(minutes=5), local)
    store.record_drift(
        run, [DriftItem("p", "c", "snap-1", "999", True), DriftItem("p", "c", "snap-1", "888")], T0
    )
    store.finish_run(run, "failed", 2, 1, {"CopyClusterSnapshot": 3, "A": 1}, "boom", local)
    store.begin_run("run", 9, local)
    drill = store.start_verification("p", "c", "snap-1", T0, "sw-verify-1", T0)
    store.finish_verification(drill, "passed", {"rows": {"ok": True}, "n": 3}, local)
    store.mark_scratch_deleted("sw-verify-1", T0)
    store.record_figures("snap-1", "p", "c", {"sales": 3, "at": "x"}, T0)


def test_rows_written_by_the_store_read_alike_by_the_models(
    store_url: str, store: StateStore
) -> None:
    store_writes_everything(store)
    dump = by_models(store_url)
    assert all(dump.values()), "every table has rows"
    assert_aware_utc(dump)
    [snap1, snap2] = dump["owned_snapshot"]
    assert snap1["data_time"] == datetime(2026, 11, 1, 3, 30, 0, 123456, UTC)
    assert snap1["adopted"] is True and snap1["deleted_at"] is None
    assert snap2["adopted"] is False and snap2["deleted_at"] == T0 and snap2["data_time"] is None
    assert [(g["account"], g["granted_at"]) for g in dump["grant"]] == [
        ("111122223333", datetime(2026, 11, 1, 3, 30, 0, 123456, UTC)),
        ("support", None),
    ]
    run = dump["run"][0]
    assert run["api_calls"] == '{"A": 1, "CopyClusterSnapshot": 3}'
    assert run["finished_at"] == datetime(2026, 11, 1, 3, 30, 0, 123456, UTC)
    assert dump["run"][1]["status"] == "running" and dump["run"][1]["api_calls"] == "{}"
    assert [d["revoked"] for d in dump["drift"]] == [True, False]
    assert dump["lease"][0]["expires_at"] == datetime(2026, 11, 1, 3, 35, 0, 123456, UTC)
    assert dump["verification"][0]["detail"] == '{"n": 3, "rows": {"ok": true}}'
    assert dump["snapshot_figures"][0]["figures"] == '{"at": "x", "sales": 3}'
    assert [j["status"] for j in dump["journal"]] == ["failed", "pending"]


def raw_sqlite(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every store table exactly as stored: no conversion at all."""
    out = {}
    with sqlite3.connect(path) as conn:
        for model in models():
            name = model.__tablename__
            out[name] = conn.execute(f'SELECT * FROM "{name}" ORDER BY 1, 2').fetchall()
    return out


def test_sqlite_stores_the_text_state_dbs_always_held(tmp_path: Path) -> None:
    ours = tmp_path / "ours.db"
    with open_store(f"sqlite:///{ours}") as store:
        store_writes_everything(store)
    # e.g. a datetime is UTC wall time with microseconds, a boolean 0/1
    owned = raw_sqlite(ours)["owned_snapshot"]
    assert owned[0][5] == "2026-11-01 03:30:00.123456" and owned[0][8] == 1


# ------------------------------------------------------------------------------- start-up


def heavy_modules(stderr: str) -> set[str]:
    """Top-level packages among HEAVY that ``python -X importtime`` says were imported."""
    found = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name.split(".")[0] in HEAVY:
                found.add(name.split(".")[0])
    return found


def test_run_path_on_a_current_schema_imports_no_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(url).close()  # the schema is current
    code = (
        "import sys\n"
        "from datetime import UTC, datetime, timedelta\n"
        "from snapworker.core.model import Action\n"
        "from snapworker.adapters.store.repository import open_store\n"
        "at = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)\n"
        "store = open_store(sys.argv[1])\n"
        "store.load_state()\n"
        "run = store.begin_run('run', 1, at)\n"
        "entry = store.journal_start(run, Action('p', 'c', 'create', 's', 'due'), at)\n"
        "store.journal_finish(entry, 'completed', 'done', None, at)\n"
        "assert store.acquire_lease('policy:p', 'me', timedelta(minutes=5), at)\n"
        "store.finish_run(run, 'ok', 1, 0, {'CreateClusterSnapshot': 1}, None, at)\n"
        "store.close()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'sqlmodel', 'alembic'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, url], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['sqlalchemy', 'sqlmodel']"  # the store's own layer only
    with open_store(url) as store:  # and it all happened
        [run] = store.recent_runs()
        assert run.status == "ok" and run.api_calls == {"CreateClusterSnapshot": 1}


def test_current_schema_costs_one_revision_query(store_url: str) -> None:
    from sqlalchemy import event

    open_store(store_url).close()  # the schema is current
    db = open_database(store_url)
    statements: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split()[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            statements.append(" ".join(statement.split()))

    try:
        assert ensure_schema(db) is False
    finally:
        db.close()
    assert statements == ["SELECT version_num FROM alembic_version"]


@pytest.mark.e2e
def test_snapworker_run_on_a_current_schema_imports_no_alembic(sandbox: Sandbox) -> None:
    box = sandbox
    box.cluster("prod-a", env="prod")
    box.automated("prod-a", 1)
    first = box.cli("plan")  # creates the state DB: this one migrates, with Alembic
    assert first.returncode == 0, first.stderr
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "snapworker", "run"],
        env=box.env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=box.tmp,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "import time:" in done.stderr
    assert heavy_modules(done.stderr) == {"sqlalchemy", "sqlmodel"}
    assert [j["status"] for j in box.journal()] == ["completed"]  # it copied, journalled


CONFIG = """\
state_url: sqlite:///{db}
aws:
  region: us-east-1
policies:
  - name: nightly
    select:
      clusters: ["prod-*"]
    retention:
      max_age_days: 35
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["validate", "--config", "{config}"], ["iam-policy", "--config", "{config}"]],
    ids=["help", "validate", "iam-policy"],
)
def test_commands_that_never_touch_the_state_import_no_database_layer(
    tmp_path: Path, args: list[str]
) -> None:
    config = tmp_path / "snapworker.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "state.db"))
    argv = [arg.format(config=config) for arg in args]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "snapworker", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "import time:" in done.stderr
    assert heavy_modules(done.stderr) == set()
    assert not (tmp_path / "state.db").exists()


# ---------------------------------------------------------------------------- URLs, errors


def test_sqlite_urls_and_errors_need_no_sqlalchemy(tmp_path: Path) -> None:
    code = (
        "import sqlite3, sys\n"
        "from snapworker.config import _state_url\n"
        "from snapworker.adapters.store.errors import describe_error\n"
        "from snapworker.config.urls import masked_url\n"
        "url = sys.argv[1]\n"
        "assert _state_url(url) == url\n"
        "assert masked_url(url) == url\n"
        "print(describe_error(sqlite3.OperationalError('database is locked')))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'sqlalchemy', 'sqlmodel', 'alembic'}))\n"
    )
    url = f"sqlite:///{tmp_path / 'state.db'}"
    done = subprocess.run(
        [sys.executable, "-c", code, url], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["OperationalError: database is locked", "[]"]


def test_describe_error_is_the_dbapi_reason_either_way() -> None:
    from sqlalchemy.exc import OperationalError

    orig = sqlite3.OperationalError("database is locked")
    wrapped = OperationalError("BEGIN IMMEDIATE", {}, orig)
    assert describe_error(orig) == describe_error(wrapped) == "OperationalError: database is locked"


def test_masked_url_hides_passwords() -> None:
    assert masked_url("postgresql+psycopg://admin:s3cret@db/state") == (
        "postgresql+psycopg://admin:***@db/state"
    )
    assert "s3cret" not in masked_url("sqlite://admin:s3cret@/x.db")
    assert "s3cret" not in masked_url("::not a url admin:s3cret@x")


def test_in_memory_sqlite_is_one_database_for_every_thread() -> None:
    import threading

    with open_store("sqlite://") as store:
        threads = [
            threading.Thread(target=lambda: [store.begin_run("run", 1, T0) for _ in range(10)])
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(store.recent_runs(limit=100)) == 30
