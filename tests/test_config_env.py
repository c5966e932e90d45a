"""``SNAPWORKER_STATE_URL`` (issue 17: the Kubernetes manifests take the PostgreSQL URL from
a Secret through it): set and non-empty, it replaces the file's ``state_url``, checked the
same way; a bad one exits 2 naming the variable, and never echoes the value (it may hold a
password). Through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from snapworker.adapters.store.repository import open_store
from snapworker.config import ConfigError, load_config

VAR = "SNAPWORKER_STATE_URL"
SECRET = "S3cretPassw0rd"
CONFIG = """\
state_url: sqlite:///{db}
policies:
  - name: p
    select:
      clusters: ["*"]
    retention:
      max_age_days: 3
"""


def write(tmp: Path) -> Path:
    path = tmp / "snapworker.yaml"
    path.write_text(CONFIG.format(db=tmp / "from-the-file.db"))
    return path


def cli(tmp: Path, *args: str, url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPWORKER_", "AWS_"))}
    if url is not None:
        env[VAR] = url
    return subprocess.run(
        [sys.executable, "-m", "snapworker", *args, "-c", str(write(tmp))],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_variable_replaces_the_files_state_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path)
    monkeypatch.setenv(VAR, "")  # empty: the file's
    assert load_config(path).state_url == f"sqlite:///{tmp_path / 'from-the-file.db'}"
    url = f"postgresql+psycopg://snap:{SECRET}@db.internal:5432/snapworker"
    monkeypatch.setenv(VAR, url)
    assert load_config(path).state_url == url


def test_status_uses_the_database_the_variable_names(tmp_path: Path) -> None:
    # status reads an existing state DB only (none: exit 2), so the variable's one is made
    # first; the file's one is never made, so status answering at all proves which it read.
    open_store(f"sqlite:///{tmp_path / 'from-the-secret.db'}").close()
    r = cli(tmp_path, "status", url=f"sqlite:///{tmp_path / 'from-the-secret.db'}")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "from-the-secret.db").is_file()
    assert not (tmp_path / "from-the-file.db").exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"postgresql://snap:{SECRET}@db.internal:notaport/snapworker", "is not a SQLAlchemy"),
        (f"nosuchdb://snap:{SECRET}@db.internal/snapworker", "'nosuchdb'"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "status"])
def test_a_bad_url_in_the_variable_exits_2_naming_it_and_not_the_password(
    tmp_path: Path, url: str, says: str, command: str
) -> None:
    r = cli(tmp_path, command, url=url)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith(f"{VAR}: ") and says in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
    assert SECRET not in r.stderr + r.stdout
    assert not (tmp_path / "from-the-file.db").exists()  # the file's URL is not used instead


def test_the_error_names_the_variable_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAR, f"not a url :{SECRET}")
    with pytest.raises(ConfigError) as caught:
        load_config(Path(__file__).resolve().parent.parent / "config" / "minimal.yaml")
    (problem,) = caught.value.problems
    assert problem.file == VAR and SECRET not in str(caught.value)
