"""README's "What snapworker guarantees" names, for each invariant, the tests that prove it:
every one it names must exist, so the section cannot silently go stale when a test is
renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_the_guarantees_section_names_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## What snapworker guarantees")
    section = readme[start : readme.index("\n## ", start + 1)]
    named = set(re.findall(r"`(test_\w+\.py)::(test_\w+)`", section))
    assert len(named) >= 20, named
    missing = []
    for file, test in sorted(named):
        path = ROOT / "tests" / file
        source = path.read_text() if path.exists() else ""
        if re.search(rf"^def {test}\(", source, re.MULTILINE) is None:
            missing.append(f"{file}::{test}")
    assert not missing, f"README names tests that do not exist: {missing}"
    for n in range(1, 8):  # docs/design.md's seven safety invariants, each with its tests
        assert re.search(rf"^{n}\. \*\*", section, re.MULTILINE), f"invariant {n} missing"
