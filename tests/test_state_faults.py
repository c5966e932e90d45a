"""State DB faults, through the real CLI (``snapworker run`` as a subprocess).

- locked by another process (``BEGIN EXCLUSIVE`` held): the run fails after SQLite's busy
  timeout with a message naming the DB, exit 2, and no AWS mutation;
- missing: created (its directory too), mode 0600, and the run works;
- an older schema (Alembic revision 0001): migrated to the head on start;
  tables but no ``alembic_version`` row: refused with a message naming the DB, exit 2;
- unwritable (immutable file or directory via ``chattr +i``; we run as root, so file modes
  would not stop us) or not a database at all: a clear error before any AWS mutation.

Exit code 2 for all of them: nothing was attempted in AWS, and the setup (not the run)
needs fixing — the same code as a state DB that cannot be opened at all.
"""

from __future__ import annotations

import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapworker.adapters.aws.redshift import MUTATIONS
from snapworker.adapters.store.schema import HEAD_REVISION
from snapworker.sandbox import moto_ext
from tests.e2e_support import Sandbox

pytestmark = pytest.mark.e2e


def _seed(box: Sandbox) -> None:
    box.cluster("prod-a", env="prod")
    box.automated("prod-a", 1)
    moto_ext.reset_call_counts()


def _no_mutation() -> None:
    calls = moto_ext.call_counts()
    assert not set(calls) & MUTATIONS, calls


def _refused(r: subprocess.CompletedProcess[str], db: Path, *fragments: str) -> None:
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out, out
    assert f"state DB sqlite:///{db}" in r.stderr, r.stderr
    for fragment in fragments:
        assert fragment in r.stderr, r.stderr
    _no_mutation()


def _revision(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [row[0] for row in con.execute("select version_num from alembic_version")]
    finally:
        con.close()


def _tables(db: Path) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    finally:
        con.close()


def test_locked_by_another_process(sandbox: Sandbox) -> None:
    box = sandbox
    _seed(box)
    assert box.cli("plan").returncode == 0  # the DB exists, at the current schema
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(box.db)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        moto_ext.reset_call_counts()
        r = box.cli("run")
    finally:
        holder.communicate("", timeout=10)
    _refused(r, box.db, "database is locked")
    # once the lock is gone, the same run works
    ok = box.cli("run")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert moto_ext.call_counts().get("CopyClusterSnapshot") == 1


def test_missing_db_is_created_owner_only(sandbox: Sandbox) -> None:
    box = sandbox
    _seed(box)
    db = box.tmp / "new" / "dir" / "state.db"
    db.parent.mkdir(parents=True)  # snapworker creates no folder (tests/test_state_paths.py)
    box.config.write_text(box.config.read_text().replace(str(box.db), str(db)))
    r = box.cli("run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert _revision(db) == [HEAD_REVISION]


def test_older_schema_is_migrated(sandbox: Sandbox) -> None:
    from alembic import command
    from alembic.config import Config

    from snapworker.adapters.store.schema import migrations_dir

    box = sandbox
    _seed(box)
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{box.db}")
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{box.db}")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    assert _revision(box.db) == ["0001"]
    assert "owned_snapshot" in _tables(box.db) and "drift" not in _tables(box.db)

    r = box.cli("run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _revision(box.db) == [HEAD_REVISION]
    assert "drift" in _tables(box.db)  # added by migration 0002
    assert box.cli("status").returncode == 0


def test_tables_without_a_revision_are_refused(sandbox: Sandbox) -> None:
    box = sandbox
    _seed(box)
    assert box.cli("plan").returncode == 0
    con = sqlite3.connect(box.db)
    con.execute("delete from alembic_version")
    con.commit()
    con.close()
    moto_ext.reset_call_counts()
    r = box.cli("run")
    _refused(r, box.db, f"cannot bring the schema to {HEAD_REVISION}", "already exists")
    assert moto_ext.call_counts() == {}


def test_not_a_database(sandbox: Sandbox) -> None:
    box = sandbox
    _seed(box)
    box.db.write_bytes(b"these are not the tables you are looking for\n" * 200)
    r = box.cli("run")
    _refused(r, box.db, "file is not a database")
    assert moto_ext.call_counts() == {}


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Paths made immutable with ``chattr +i`` (undone at teardown)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    paths: list[Path] = []
    yield paths
    for p in paths:
        subprocess.run(["chattr", "-i", str(p)], check=False)


def _chattr(path: Path, immutable: list[Path]) -> None:
    r = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"chattr +i not supported here: {r.stderr.strip()}")
    immutable.append(path)


def test_read_only_db_file(sandbox: Sandbox, immutable: list[Path]) -> None:
    box = sandbox
    _seed(box)
    assert box.cli("plan").returncode == 0
    # a clean file: no WAL left beside it
    for extra in box.tmp.glob("state.db-*"):
        extra.unlink()
    _chattr(box.db, immutable)
    moto_ext.reset_call_counts()
    r = box.cli("run")
    _refused(r, box.db, "readonly database")


def test_read_only_directory(sandbox: Sandbox, immutable: list[Path]) -> None:
    box = sandbox
    _seed(box)
    locked_dir = box.tmp / "ro"
    locked_dir.mkdir()
    db = locked_dir / "state.db"
    box.config.write_text(box.config.read_text().replace(str(box.db), str(db)))
    _chattr(locked_dir, immutable)
    r = box.cli("run")
    _refused(r, db, str(db))
    assert moto_ext.call_counts() == {}
