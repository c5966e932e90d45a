"""Where the state DB is, through the real CLI against moto's server: snapworker creates no
folder (a missing one is exit 2 naming it, for every command that opens the state); `status`
and `plan --explain` never create a database; a database in a folder SQLite cannot write its
-wal/-shm files in is refused by `run` naming the folder, and read read-only by `status`."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapworker.sandbox import moto_ext
from tests.e2e_support import Sandbox

pytestmark = pytest.mark.e2e

SNAP = "sw-prod-nightly-anything"

COMMANDS = {
    "plan": ("plan",),
    "plan --explain": ("plan", "--explain", SNAP),
    "run": ("run",),
    "status": ("status",),
    "hold": ("hold", SNAP, "--reason", "audit"),
    "release": ("release", SNAP),
    "daemon": ("daemon",),
}

MUTATIONS = {
    "CreateClusterSnapshot",
    "CopyClusterSnapshot",
    "AuthorizeSnapshotAccess",
    "RevokeSnapshotAccess",
    "DeleteClusterSnapshot",
    "CreateTags",
    "DeleteTags",
}


def _seed(box: Sandbox) -> None:
    box.cluster("prod-a", env="prod")
    box.automated("prod-a", 1)
    moto_ext.reset_call_counts()


def _point_at(box: Sandbox, db: Path) -> None:
    text = box.config.read_text()
    box.config.write_text(text.replace(text.split("sqlite:///", 1)[1].split("\n", 1)[0], str(db)))


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_missing_folder_is_an_error_and_is_not_created(sandbox: Sandbox, command: str) -> None:
    box = sandbox
    _seed(box)
    missing = box.tmp / "mistyped" / "dir"
    _point_at(box, missing / "state.db")
    r = box.cli(*COMMANDS[command], timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out, out
    assert f"the folder {missing} does not exist" in r.stderr, r.stderr
    assert not (box.tmp / "mistyped").exists()
    assert not set(moto_ext.call_counts()) & MUTATIONS


@pytest.mark.parametrize("command", ["status", "plan --explain"])
def test_status_and_explain_never_create_a_database(sandbox: Sandbox, command: str) -> None:
    box = sandbox
    _seed(box)
    r = box.cli(*COMMANDS[command])
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"no state DB at {box.db}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not box.db.exists()
    assert list(box.tmp.glob("state.db*")) == []


def test_status_makes_no_database_of_an_empty_file(sandbox: Sandbox) -> None:
    box = sandbox
    _seed(box)
    box.db.touch()
    r = box.cli("status")
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"no state DB at {box.db}" in r.stderr, r.stderr
    con = sqlite3.connect(box.db)
    try:
        assert list(con.execute("select name from sqlite_master")) == []
    finally:
        con.close()


def test_plan_creates_the_database_in_a_folder_that_exists(sandbox: Sandbox) -> None:
    box = sandbox
    _seed(box)
    r = box.cli("plan")
    assert r.returncode == 0, r.stderr
    assert box.db.exists()
    # ... and then status reads it
    s = box.cli("status")
    assert s.returncode == 0, s.stderr


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Paths made immutable with ``chattr +i`` (undone at teardown): the one way a folder
    refuses root (the tests run as root) its -wal and -shm files."""
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


def _db_in_own_folder(box: Sandbox) -> Path:
    folder = box.tmp / "state"
    folder.mkdir()
    db = folder / "state.db"
    _point_at(box, db)
    r = box.cli("run")
    assert r.returncode == 0, r.stdout + r.stderr
    return db


def test_an_unwritable_folder_is_named_and_status_reads_read_only(
    sandbox: Sandbox, immutable: list[Path]
) -> None:
    box = sandbox
    _seed(box)
    db = _db_in_own_folder(box)
    assert sorted(p.name for p in db.parent.iterdir()) == ["state.db"]  # no -wal/-shm left
    _chattr(db.parent, immutable)
    moto_ext.reset_call_counts()

    r = box.cli("run")
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"the folder {db.parent} is not writable" in r.stderr, r.stderr
    assert "unable to open database file" not in r.stderr
    assert "Traceback" not in r.stderr
    assert not set(moto_ext.call_counts()) & MUTATIONS

    s = box.cli("status", "--format", "json")
    assert s.returncode == 0, s.stderr
    data = json.loads(s.stdout)
    assert len(data["owned"]) == 1 and data["owned"][0]["cluster"] == "prod-a"
    assert data["runs"][0]["status"] == "ok"
    assert "read read-only" in s.stderr and str(db.parent) not in s.stdout
    assert sorted(p.name for p in db.parent.iterdir()) == ["state.db"]


def test_status_says_why_it_cannot_read_a_wal_it_cannot_reach(
    sandbox: Sandbox, immutable: list[Path]
) -> None:
    box = sandbox
    _seed(box)
    db = _db_in_own_folder(box)
    # A copy of the folder taken while a writer had not checkpointed yet (a backup, a
    # read-only volume): its last changes are in state.db-wal only, and there is no -shm.
    copy = box.tmp / "copy"
    copy.mkdir()
    holder = sqlite3.connect(db)
    try:
        holder.execute("PRAGMA wal_autocheckpoint=0")
        holder.execute("delete from lease")
        holder.commit()
        for name in ("state.db", "state.db-wal"):
            shutil.copy(db.parent / name, copy / name)
    finally:
        holder.close()
    assert (copy / "state.db-wal").stat().st_size > 0
    _point_at(box, copy / "state.db")
    _chattr(copy, immutable)
    s = box.cli("status")
    assert s.returncode == 2, s.stdout + s.stderr
    assert f"the folder {copy} is not writable" in s.stderr, s.stderr
    assert "state.db-wal holds changes not yet in state.db" in s.stderr, s.stderr
    assert "Traceback" not in s.stderr
