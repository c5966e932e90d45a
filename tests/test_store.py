"""The state DB against real SQLite files, and PostgreSQL: schema, safety of the file, journal,
leases.

The behavioural tests run on both backends (the ``store`` fixture is parametrized; the
PostgreSQL runs skip when ``.ci/services`` has not started the test server)."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from snapworker.adapters.store.engine import open_database
from snapworker.adapters.store.repository import StateStore, StateStoreError, open_store
from snapworker.adapters.store.schema import HEAD_REVISION, ensure_schema, migrations_dir
from snapworker.core.model import Action, GrantRecord, OwnedRecord
from tests import pg_support
from tests.pg_support import pg_database  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
TABLES = {"owned_snapshot", "grant", "copied_source", "journal", "run", "lease"}


def url_for(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def sqlite_store(db_path: Path) -> Iterator[StateStore]:
    s = open_store(url_for(db_path))
    yield s
    s.close()


def other_connection(url: str, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql`` read on a connection of its own, outside the store."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    return pg_support.query(url.rsplit("/", 1)[1], sql)


def tables_of(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows}


def revision_of(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]


def action(snapshot: str = "snap-1", kind: str = "create", **kw: object) -> Action:
    return Action(
        policy="prod-nightly",
        cluster="prod-a",
        kind=kind,  # type: ignore[arg-type]
        snapshot=snapshot,
        reason="schedule due",
        **kw,  # type: ignore[arg-type]
    )


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ------------------------------------------------------------------------------------ schema


def test_head_revision_is_alembic_script_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def test_models_match_migrations(store: StateStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from snapworker.adapters.store.tables import metadata

    # A database the migrations built (the fixture opened a new one) against the tables.
    with store.database.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, metadata) == []


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    """A database with no table at all: a new SQLite file, or this session's scratch
    PostgreSQL database with the store's tables and the revision dropped (the next open
    migrates it again)."""
    if request.param == "sqlite":
        return url_for(db_path)
    name = request.getfixturevalue("pg_database")
    with pg_support.connect(name, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {', '.join(pg_support.STORE_TABLES)}, alembic_version")
    return pg_support.url_of(name)


def test_migrations_build_exactly_the_tables(empty_url: str) -> None:
    """The schema has one source, the SQLModel tables: upgraded from nothing by the shipped
    migrations, the database is what Alembic's autogenerate makes of the tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from snapworker.adapters.store.tables import metadata

    db = open_database(empty_url)
    try:
        assert ensure_schema(db) is True  # every migration ran
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        db.close()


def test_migration_renders_for_postgresql() -> None:
    from alembic import command
    from alembic.config import Config

    buffer = io.StringIO()
    config = Config(output_buffer=buffer)
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", "postgresql://snap@localhost/snap")
    command.upgrade(config, "head", sql=True)
    sql = buffer.getvalue()
    assert 'CREATE TABLE "grant"' in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql
    assert "UPDATE alembic_version SET version_num='0001'" in sql or "0001" in sql


def test_first_open_creates_schema_second_does_no_migration(db_path: Path) -> None:
    url = url_for(db_path)
    db = open_database(url, 5000)
    try:
        assert ensure_schema(db) is True
        assert ensure_schema(db) is False
    finally:
        db.close()
    assert tables_of(db_path) >= TABLES
    assert revision_of(db_path) == [HEAD_REVISION]

    store = open_store(url)
    try:
        assert ensure_schema(store.database) is False
    finally:
        store.close()


def test_current_schema_does_not_import_alembic(db_path: Path) -> None:
    open_store(url_for(db_path)).close()
    code = (
        "import sys\n"
        "from snapworker.adapters.store.repository import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "store.load_state()\n"
        "store.close()\n"
        "print('alembic' in sys.modules, any(m.startswith('alembic.') for m in sys.modules))\n"
    )
    done = run_python(code, url_for(db_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_older_database_is_migrated(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE dummy (x INTEGER)")
        conn.execute("INSERT INTO dummy VALUES (1)")
    store = open_store(url_for(db_path))
    store.close()
    assert TABLES | {"dummy", "alembic_version"} <= tables_of(db_path)
    assert revision_of(db_path) == [HEAD_REVISION]


def test_stamped_base_database_is_migrated(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    db = open_database(url_for(db_path), 5000)
    try:
        assert ensure_schema(db) is True
    finally:
        db.close()
    assert revision_of(db_path) == [HEAD_REVISION]


def test_newer_schema_is_a_clear_error(db_path: Path) -> None:
    open_store(url_for(db_path)).close()
    newer = f"{int(HEAD_REVISION) + 1:04d}"
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (newer,))
    with pytest.raises(StateStoreError) as err:
        open_store(url_for(db_path))
    message = str(err.value)
    assert (
        f"schema {newer} is newer than this snapworker (HEAD {HEAD_REVISION}); upgrade snapworker"
        in message
    )
    assert str(db_path) in message
    assert revision_of(db_path) == [newer]  # untouched


def test_concurrent_first_opens_migrate_once(db_path: Path) -> None:
    code = (
        "import sys\n"
        "from snapworker.adapters.store.repository import open_store\n"
        "open_store(sys.argv[1]).close()\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url_for(db_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert revision_of(db_path) == [HEAD_REVISION]


# ----------------------------------------------------------------------- the file and errors


def test_new_file_is_owner_only(db_path: Path, sqlite_store: StateStore) -> None:
    sqlite_store.begin_run("run", os.getpid(), T0)
    for path in db_path.parent.iterdir():  # the database, and its -wal / -shm files
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_new_file_is_owner_only_whatever_the_umask(db_path: Path) -> None:
    old = os.umask(0)
    try:
        open_store(url_for(db_path)).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_parent_that_cannot_be_a_directory_fails_before_anything(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    url = url_for(blocker / "sub" / "state.db")
    with pytest.raises(StateStoreError) as err:
        open_store(url)
    assert url.removeprefix("sqlite:///") in str(err.value)
    assert blocker.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_unwritable_directory_fails_before_anything(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StateStoreError, match="cannot create"):
            open_store(url_for(locked / "state.db"))
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_garbage_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(StateStoreError) as err:
        open_store(url_for(path))
    assert str(path) in str(err.value)
    assert "not a database" in str(err.value)


def test_unknown_driver_masks_the_password() -> None:
    with pytest.raises(StateStoreError) as err:
        open_store("nosuchdb://admin:s3cret@db.example/state")
    message = str(err.value)
    assert "s3cret" not in message
    assert "admin:***@db.example" in message
    assert "driver" in message


def test_unparseable_url_masks_the_password() -> None:
    with pytest.raises(StateStoreError) as err:
        open_store("::not a url admin:s3cret@x")
    assert "s3cret" not in str(err.value)


def test_locked_beyond_the_busy_timeout_is_an_error(db_path: Path) -> None:
    open_store(url_for(db_path)).close()
    store = open_store(url_for(db_path), busy_timeout_ms=50)
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StateStoreError) as err:
            store.begin_run("run", 1, T0)
        assert "locked" in str(err.value)
        assert str(db_path) in str(err.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


# ---------------------------------------------------------------------------------- records


def test_datetimes_round_trip_as_aware_utc(store: StateStore) -> None:
    plus2 = timezone(timedelta(hours=2))
    data_time = datetime(2026, 11, 1, 5, 30, 0, 123456, tzinfo=plus2)
    rec = OwnedRecord("snap-1", "prod-nightly", "prod-a", "copy", data_time, source_id="rs:a")
    store.record_owned(rec, at=T0)
    got = store.load_state().owned["snap-1"]
    assert got.data_time == data_time
    assert got.data_time is not None and got.data_time.tzinfo == UTC
    assert got.data_time.hour == 3
    view = store.owned_summary().owned["prod-nightly"]["prod-a"][0]
    assert view.recorded_at == T0 and view.recorded_at.tzinfo == UTC


def test_lease_times_are_stored_as_utc(db_path: Path, sqlite_store: StateStore) -> None:
    store = sqlite_store
    plus2 = timezone(timedelta(hours=2))
    local = datetime(2026, 11, 27, 5, 0, tzinfo=plus2)  # 03:00 UTC
    assert store.acquire_lease("policy:prod", "a", timedelta(minutes=1), local) is True
    assert store.acquire_lease("policy:prod", "a", timedelta(minutes=1), local + timedelta(1))
    assert store.acquire_lease("policy:prod", "b", timedelta(minutes=1), T0 + timedelta(2))

    def lease() -> tuple[str, str, str]:
        with sqlite3.connect(db_path) as conn:
            return conn.execute("SELECT holder, acquired_at, expires_at FROM lease").fetchone()

    # a renewal by the holder keeps acquired_at; a takeover resets it
    assert store.acquire_lease("policy:prod", "b", timedelta(minutes=1), T0 + timedelta(2, 30))
    holder, acquired, expires = lease()
    assert holder == "b"
    assert acquired.startswith("2026-11-29 03:00:00")
    assert expires.startswith("2026-11-29 03:01:30")
    store.release_lease("policy:prod", "b")
    assert store.acquire_lease("policy:prod", "a", timedelta(minutes=1), local)
    assert lease()[1].startswith("2026-11-27 03:00:00")


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.begin_run("run", 1, datetime(2026, 1, 1))
    rec = OwnedRecord("snap-1", "p", "c", "create", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="data_time"):
        store.record_owned(rec, at=T0)


def test_owned_summary_lists_a_cluster_oldest_data_first_unknown_first(store: StateStore) -> None:
    for sid, data_time in (("b-new", T0), ("a-old", T0 - timedelta(1)), ("z-unknown", None)):
        store.record_owned(OwnedRecord(sid, "p", "c", "copy", data_time), at=T0)
    views = store.owned_summary().owned["p"]["c"]
    assert [v.snapshot_id for v in views] == ["z-unknown", "a-old", "b-new"]  # both backends


def test_owned_upsert_keeps_what_it_knew(store: StateStore) -> None:
    rec = OwnedRecord("snap-1", "p", "c", "copy", T0, source_id="rs:auto-1")
    store.record_owned(rec, at=T0)
    store.record_owned(
        OwnedRecord("snap-1", "p", "c", "copy", None), adopted=True, at=T0 + timedelta(1)
    )
    got = store.load_state().owned["snap-1"]
    assert got.data_time == T0 and got.source_id == "rs:auto-1"
    view = store.owned_summary().owned["p"]["c"][0]
    assert view.adopted is False and view.recorded_at == T0

    store.record_owned(OwnedRecord("snap-2", "p", "c", "create", T0), adopted=True, at=T0)
    assert store.owned_summary().owned["p"]["c"][1].adopted is True

    assert store.mark_deleted("snap-1", T0 + timedelta(2)) is True
    assert store.mark_deleted("snap-1", T0 + timedelta(3)) is True
    assert store.mark_deleted("nope", T0) is False
    state = store.load_state()
    assert state.owned["snap-1"].deleted_at == T0 + timedelta(2)  # deleted ones stay
    assert state.owned["snap-2"].deleted_at is None


def test_copied_sources_are_per_policy_and_once(store: StateStore) -> None:
    assert store.copied_sources("p") == set()
    assert store.record_copied_source("p", "rs:auto-1", "copy-1", T0) is True
    assert store.record_copied_source("p", "rs:auto-1", "copy-other", T0) is False
    assert store.record_copied_source("q", "rs:auto-1", "copy-q", T0) is True
    assert store.copied_sources("p") == {"rs:auto-1"}
    assert store.copied_sources("q") == {"rs:auto-1"}


def test_grants_and_revokes(store: StateStore) -> None:
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    assert store.record_grant("snap-1", "111122223333", T0) is True
    assert store.record_grant("snap-1", "111122223333", t1) is False  # one open grant
    assert [g.account for g in store.owned_summary().open_grants] == ["111122223333"]

    assert store.record_revoke("snap-1", "111122223333", t2) is True
    assert store.record_revoke("snap-1", "111122223333", t2) is False  # repeated
    # a grant the worker never made: recorded with granted_at unknown, not in State.grants
    assert store.record_revoke("snap-1", "amazon-redshift-support", t2) is True

    state = store.load_state()
    assert state.grants == (GrantRecord("snap-1", "111122223333", T0, t2),)
    assert store.owned_summary().open_grants == ()

    assert store.record_grant("snap-1", "111122223333", t2) is True  # granted again later
    assert len(store.load_state().grants) == 2


# ---------------------------------------------------------------------------- journal, runs


def test_journal_reuses_a_pending_key(store: StateStore) -> None:
    run1 = store.begin_run("run", 100, T0)
    first = store.journal_start(run1, action(), T0)
    run2 = store.begin_run("run", 101, T0 + timedelta(minutes=5))
    again = store.journal_start(run2, action(), T0 + timedelta(minutes=5))
    assert again == first
    [entry] = store.journal(run_id=run2)
    assert entry.attempts == 2 and entry.status == "pending"
    assert entry.started_at == T0
    [pending] = store.pending_entries()
    assert pending.entry_id == first and pending.key == "prod-nightly|create|snap-1"
    assert store.load_state().pending == (pending,)

    store.journal_finish(first, "completed", "done", None, T0 + timedelta(minutes=6))
    assert store.pending_entries() == []
    # once finished, the same key starts a new entry
    third = store.journal_start(run2, action(), T0 + timedelta(minutes=7))
    assert third != first


def test_journal_keys_differ_by_account(store: StateStore) -> None:
    run = store.begin_run("run", 1, T0)
    a = store.journal_start(run, action(kind="share", account="111122223333"), T0)
    b = store.journal_start(run, action(kind="share", account="amazon-redshift-support"), T0)
    assert a != b
    assert {p.account for p in store.pending_entries()} == {
        "111122223333",
        "amazon-redshift-support",
    }


def test_journal_entry_is_durable_before_the_aws_call(store_url: str, store: StateStore) -> None:
    run = store.begin_run("run", 1, T0)
    entry = store.journal_start(run, action(kind="copy", source="rs:auto-1"), T0)
    # Another connection (another process after a SIGKILL) sees it at once.
    rows = other_connection(
        store_url, f"SELECT status, key, source_id FROM journal WHERE id = {int(entry)}"
    )
    assert rows == [("pending", "prod-nightly|copy|snap-1", "rs:auto-1")]


def test_supersede_and_unknown_statuses(store: StateStore) -> None:
    run = store.begin_run("run", 1, T0)
    entry = store.journal_start(run, action(), T0)
    store.supersede(entry, T0)
    [view] = store.journal()
    assert view.status == "superseded" and view.finished_at == T0
    with pytest.raises(ValueError):
        store.journal_finish(entry, "pending", None, None, T0)
    with pytest.raises(StateStoreError, match="does not exist"):
        store.journal_finish(9999, "completed", "done", None, T0)


def test_runs_with_failures_and_api_calls(store: StateStore) -> None:
    run = store.begin_run("daemon", 4242, T0)
    ok = store.journal_start(run, action("snap-1"), T0)
    bad = store.journal_start(run, action("snap-2"), T0)
    store.journal_finish(ok, "completed", "done", None, T0)
    store.journal_finish(bad, "failed", None, "ClusterNotFound: gone", T0)
    store.finish_run(run, "failed", 1, 1, {"CreateClusterSnapshot": 2}, "1 action failed", T0)
    [view] = store.recent_runs()
    assert view.status == "failed" and view.mode == "daemon" and view.pid == 4242
    assert view.api_calls == {"CreateClusterSnapshot": 2}
    assert [f.snapshot_id for f in view.failures] == ["snap-2"]
    assert view.failures[0].error == "ClusterNotFound: gone"
    assert [j.snapshot_id for j in store.journal(limit=1)] == ["snap-2"]


def test_prune(store: StateStore) -> None:
    old_run = store.begin_run("run", 1, T0)
    done = store.journal_start(old_run, action("snap-1"), T0)
    store.journal_finish(done, "completed", "done", None, T0)
    kept_pending = store.journal_start(old_run, action("snap-2"), T0)
    store.finish_run(old_run, "ok", 1, 0, {}, None, T0)
    new_run = store.begin_run("run", 2, T0 + timedelta(days=40))
    recent = store.journal_start(new_run, action("snap-3"), T0 + timedelta(days=40))
    store.journal_finish(recent, "completed", "done", None, T0 + timedelta(days=40))
    unfinished_run = store.begin_run("run", 3, T0)

    assert store.prune(T0 + timedelta(days=30)) == 2  # one entry, one run
    assert {r.id for r in store.recent_runs()} == {new_run, unfinished_run}
    assert {j.id for j in store.journal()} == {kept_pending, recent}
    assert [p.entry_id for p in store.pending_entries()] == [kept_pending]


# ------------------------------------------------------------------------------------ leases


def test_lease_exclusive_between_stores_and_expiry(store_url: str) -> None:
    a = open_store(store_url)
    b = open_store(store_url)
    ttl = timedelta(seconds=60)
    try:
        assert a.acquire_lease("policy:prod", "a", ttl, T0) is True
        assert b.acquire_lease("policy:prod", "b", ttl, T0 + timedelta(seconds=30)) is False
        assert a.acquire_lease("policy:prod", "a", ttl, T0 + timedelta(seconds=30)) is True
        assert b.acquire_lease("policy:other", "b", ttl, T0) is True  # another name

        assert b.renew_lease("policy:prod", "b", ttl, T0) is False
        assert a.renew_lease("policy:prod", "a", ttl, T0 + timedelta(seconds=80)) is True
        # a's lease now runs to +140 s
        assert b.acquire_lease("policy:prod", "b", ttl, T0 + timedelta(seconds=139)) is False
        assert b.acquire_lease("policy:prod", "b", ttl, T0 + timedelta(seconds=140)) is True
        assert a.renew_lease("policy:prod", "a", ttl, T0 + timedelta(seconds=141)) is False

        assert a.release_lease("policy:prod", "a") is False
        assert b.release_lease("policy:prod", "b") is True
        assert a.acquire_lease("policy:prod", "a", ttl, T0 + timedelta(seconds=141)) is True
    finally:
        a.close()
        b.close()


def test_lease_inserted_meanwhile_on_postgresql_is_not_taken(
    pg_database: str,  # noqa: F811  (the fixture imported above)
) -> None:
    """PostgreSQL: two processes find the lease free, and both insert it; the one whose
    insert comes second finds it held (the primary key), and says so."""
    from sqlalchemy import event

    pg_support.clean(pg_database)
    store = open_store(pg_support.url_of(pg_database))
    ttl = timedelta(minutes=5)

    @event.listens_for(store.database.engine, "before_cursor_execute")
    def _other_process_first(_conn: object, _cursor: object, statement: str, *_a: object) -> None:
        if statement.startswith("INSERT INTO lease"):
            with pg_support.connect(pg_database, autocommit=True) as other:
                other.execute(
                    "INSERT INTO lease (name, holder, acquired_at, expires_at, fence)"
                    " VALUES ('policy:prod', 'other', now(), now() + interval '5 minutes', 1)"
                )

    try:
        assert store.acquire_lease("policy:prod", "me", ttl, T0) is False
        event.remove(store.database.engine, "before_cursor_execute", _other_process_first)
        assert store.lease_holder("policy:prod") == "other"
    finally:
        store.close()


def test_lease_contended_by_processes(store_url: str) -> None:
    open_store(store_url).close()
    code = (
        "import sys\n"
        "from datetime import UTC, datetime, timedelta\n"
        "from snapworker.adapters.store.repository import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "at = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)\n"
        "print(store.acquire_lease('policy:prod', sys.argv[2], timedelta(minutes=5), at))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, store_url, f"holder-{i}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(out.strip())
    assert sorted(results) == ["False"] * 5 + ["True"]


# ------------------------------------------------------------------------------------- wheel


@pytest.mark.slow
def test_wheel_ships_the_migrations(tmp_path: Path) -> None:
    # Build from a copy: nothing lands in the work tree, and a README still being written
    # elsewhere in the tree does not stop the build.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copytree(ROOT / "snapworker", src / "snapworker", ignore=ignore)
    shutil.copytree(ROOT / "migrations", src / "migrations", ignore=ignore)
    readme = ROOT / "README.md"
    (src / "README.md").write_text(readme.read_text() if readme.exists() else "snapworker\n")
    out = tmp_path / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    [wheel] = out.glob("snapworker-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "snapworker/_migrations/env.py" in names
    assert "snapworker/_migrations/script.py.mako" in names
    assert "snapworker/_migrations/versions/0001_initial.py" in names
    assert "snapworker/adapters/store/schema.py" in names

    # Installed from it, the store migrates with the shipped copy of the migrations.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys\n"
        "from snapworker.adapters.store.repository import open_store\n"
        "from snapworker.adapters.store.schema import migrations_dir\n"
        "open_store(sys.argv[1]).close()\n"
        "print(migrations_dir())\n"
    )
    db = tmp_path / "installed" / "state.db"
    db.parent.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", code, url_for(db)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == (site / "snapworker" / "_migrations").resolve()
    assert revision_of(db) == [HEAD_REVISION]
