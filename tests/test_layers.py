"""The layering contract (docs/design.md, "Layering"; ``[tool.importlinter]`` in
pyproject.toml) holds: entrypoints over service over adapters and views, over config, over
logs and errors, over a core that imports nothing else from the package, not even for types;
no import cycle between sibling modules. ``.ci/run`` runs the same ``lint-imports``; this test
makes a plain ``pytest`` say so too, with import-linter's report of each broken import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports() -> str | None:
    beside = Path(sys.executable).with_name("lint-imports")
    return str(beside) if beside.exists() else shutil.which("lint-imports")


def test_the_import_layers_hold() -> None:
    exe = _lint_imports()
    if exe is None:
        pytest.skip("lint-imports not installed (pip install -e '.[test]' installs import-linter)")
    r = subprocess.run(
        [exe, "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
