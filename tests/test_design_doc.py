"""The design contract lives in the repository (``docs/design.md``), and the repository
cites nothing outside itself: no tracked file points at the old shared design page or moto
notes, the README links the design, and the design's layout and layering match the
package and the import-linter contract that checks it."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"

# Citations of files that are not in the repository. DESIGN.md in capitals was the shared
# page; docs/design.md (lower case) is its home now.
OUTSIDE = re.compile(r"\.\./shared/|/work/shared|shared/DESIGN|DESIGN\.md|MOTO-NOTES")


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of tracked files")
    return [ROOT / name for name in out.decode().split("\0") if name]


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_no_tracked_file_cites_a_file_outside_the_repository() -> None:
    me = Path(__file__).resolve()
    found = []
    for path in _tracked():
        if path.resolve() == me or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "cite docs/design.md or docs/moto.md instead:\n" + "\n".join(found)


def test_the_readme_links_the_design_near_the_top() -> None:
    top = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    assert "(docs/design.md)" in top and "(docs/moto.md)" in top
    assert (ROOT / "docs" / "moto.md").is_file()


def test_the_design_keeps_its_contract_sections() -> None:
    text = DESIGN.read_text()
    for heading in (
        "Layout",
        "Layering",
        "Errors",
        "Safety invariants",
        "Configuration",
        "Command line",
        "State",
    ):
        assert f"\n## {heading}" in text, heading
    invariants = _section(text, "Safety invariants")
    assert [int(n) for n in re.findall(r"^(\d)\. ", invariants, re.MULTILINE)] == list(range(1, 8))
    assert '"generated_at"' in _section(text, "Command line")  # the JSON output contract


def test_the_layout_names_every_package_and_module_of_snapworker() -> None:
    text = DESIGN.read_text()
    layout = _section(text, "Layout")
    described = layout + _section(text, "Layering")
    pkg = ROOT / "snapworker"
    for child in sorted(pkg.iterdir()):
        if child.name.startswith(("_", ".")) or child.name == "py.typed":
            continue
        if child.is_dir() and (child / "__init__.py").exists():
            assert f"{child.name}/" in layout, f"docs/design.md Layout lacks {child.name}/"
        elif child.suffix == ".py":
            assert child.stem in described, f"docs/design.md Layout lacks {child.name}"
    for sub in sorted((pkg / "adapters").iterdir()):
        if (sub / "__init__.py").exists():
            assert f"{sub.name}/" in layout, f"docs/design.md Layout lacks adapters/{sub.name}/"


def test_the_layering_described_is_the_one_checked() -> None:
    """The layers of docs/design.md, top to bottom, are import-linter's layers contract."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    checked = []
    for layer in contract["layers"]:
        names = [n.strip() for n in layer.split("|")]
        names = [n for n in names if not n.startswith("(") and n != "__main__"]
        if names:
            checked.append(" | ".join(names))
    block = re.search(r"\n\n((?:    \S.*\n)+)", _section(DESIGN.read_text(), "Layering"))
    assert block is not None
    described = [re.split(r"\s{2,}", ln.strip())[0] for ln in block.group(1).splitlines()]
    assert described == checked
    assert config.get("exclude_type_checking_imports") is False  # types are imports too
