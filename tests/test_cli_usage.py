"""The command line as a new user meets it (issue 16, "Small things"): ``--version``, shell
completion, ``--help`` of the app and of every command with no type placeholders and no
sentence cut mid-way, and a mistyped ``credentials --cluster`` as a usage error (exit 2).

Everything runs the real CLI in a subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version

import pytest

from tests.e2e_support import Sandbox

COMMANDS = [
    "credentials",
    "iam-policy",
    "daemon",
    "hold",
    "release",
    "validate",
    "status",
    "demo",
    "sandbox",
    "run",
    "plan",
    "report",
    "schema",
]
PLACEHOLDER = re.compile(r"<(str|bool|int|float|path|file|list\[[^\]]*\])>|\{")


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPWORKER_", "_SNAP"))}
    return subprocess.run(
        [sys.executable, "-m", "snapworker", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version_prints_the_installed_version() -> None:
    r = cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"snapworker {version('snapworker')}\n"
    assert r.stderr == ""


# -- shell completion --------------------------------------------------------------------


BIN = os.path.dirname(sys.executable)  # where the installed ``snapworker`` script is


def test_show_completion_under_bash_completes_for_real() -> None:
    """``snapworker --show-completion`` from bash (the shell is detected from the process
    tree) prints a script that, sourced into bash, completes ``snapworker pl`` to plan."""
    script = (
        "source <(snapworker --show-completion) && COMP_WORDS=(snapworker pl) && COMP_CWORD=1 "
        # bash calls the function with the command name as $1
        '&& _snapworker_completion snapworker && echo "${COMPREPLY[@]}"'
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPWORKER_", "_SNAP"))}
    r = subprocess.run(
        ["bash", "-c", script],
        env={**base, "PATH": BIN + os.pathsep + base.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["plan"]


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o default -F _snapworker_completion snapworker"),
        ("zsh", "compdef _snapworker_completion snapworker"),
        ("fish", "complete --command snapworker"),
    ],
)
def test_a_completion_script_for_an_explicit_shell(shell: str, marker: str) -> None:
    """The README's way to write the script for a given shell, whatever shell runs it:
    ``_SNAPWORKER_COMPLETE=source_<shell> snapworker``; under ``python -m snapworker`` too
    (the script must register ``snapworker``, not ``python -m snapworker``)."""
    r = cli(_SNAPWORKER_COMPLETE=f"source_{shell}")
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout
    assert f"_SNAPWORKER_COMPLETE=complete_{shell}" in r.stdout


def test_completion_completes_commands_and_options() -> None:
    """What the installed script asks the CLI (``_SNAPWORKER_COMPLETE=complete_bash``): the
    commands for ``snapworker pl``, the options for ``snapworker plan --for``."""
    commands = cli(_SNAPWORKER_COMPLETE="complete_bash", COMP_WORDS="snapworker pl", COMP_CWORD="1")
    assert commands.returncode == 0, commands.stderr
    assert commands.stdout.split() == ["plan"]
    options = cli(
        _SNAPWORKER_COMPLETE="complete_bash", COMP_WORDS="snapworker plan --for", COMP_CWORD="2"
    )
    assert options.stdout.split() == ["--format"]


# -- help --------------------------------------------------------------------------------


def _entries(plain_help: str) -> list[tuple[str, str]]:
    """(section, text) of each entry in a plain (``TYPER_USE_RICH=0``) help page: the
    description paragraphs, then each option, argument and command with its help joined
    across its wrapped lines."""
    out: list[tuple[str, str]] = []
    section = "description"
    current: list[str] = []

    def flush() -> None:
        if current:
            out.append((section, " ".join(current)))
            current.clear()

    for line in plain_help.splitlines():
        if line.startswith("Usage:"):
            continue
        if line.endswith(":") and not line.startswith(" "):
            flush()
            section = line[:-1]
            continue
        if not line.strip():
            flush()
            continue
        if section == "description":
            current.append(line.strip())
        elif line.startswith("  ") and not line.startswith("   "):  # a new entry
            flush()
            # "  -c, --config FILE  Help text" / "  run  Help text": the help after 2+ spaces
            parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            current.append(parts[1] if len(parts) > 1 else "")
        else:
            current.append(line.strip())
    flush()
    return out


SENTENCE_END = re.compile(r"""[.)'"`]$""")
"""The rule for "no sentence cut mid-way": the text of each paragraph and of each entry's
help, less a trailing ``[default: ...]``/``[required]``, ends with ``.``, ``)``, a closing
quote or backquote; and no help line ends with a truncation ``...`` (the usage line's
``COMMAND [ARGS]...`` aside)."""


def _cut(text: str) -> bool:
    text = re.sub(r"\s*\[(default: [^\]]*|required)\]$", "", text).strip()
    return not text or SENTENCE_END.search(text) is None or text.endswith("...")


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_has_no_placeholders_and_no_cut_sentence(command: str) -> None:
    args = [command, "--help"] if command else ["--help"]
    rich = cli(*args, COLUMNS="100")
    plain = cli(*args, COLUMNS="100", TYPER_USE_RICH="0")
    for r in (rich, plain):
        assert r.returncode == 0, r.stderr
        assert PLACEHOLDER.search(r.stdout) is None, r.stdout
        for line in r.stdout.splitlines():
            line = line.strip(" │")
            assert not line.endswith("...") or line.endswith("COMMAND [ARGS]..."), line
    assert "Usage:" in plain.stdout
    for section, text in _entries(plain.stdout):
        assert not _cut(text), f"{command or 'snapworker'} {section}: {text!r}"


def test_help_walks_every_registered_command() -> None:
    """The list above is every command the app lists (a new one gets its help checked)."""
    r = cli("--help", COLUMNS="100", TYPER_USE_RICH="0")
    listed = [text for section, text in _entries_with_names(r.stdout) if section == "Commands"]
    assert sorted(listed) == sorted(COMMANDS)


def _entries_with_names(plain_help: str) -> list[tuple[str, str]]:
    section = ""
    out = []
    for line in plain_help.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            section = line[:-1]
        elif line.startswith("  ") and not line.startswith("   "):
            out.append((section, line.split()[0]))
    return out


def test_an_argument_shows_its_name_not_a_type() -> None:
    r = cli("hold", "--help", COLUMNS="100")
    assert "Usage: snapworker hold [OPTIONS] SNAPSHOT" in r.stdout
    assert "SNAPSHOT" in r.stdout.split("Arguments")[1]


# -- credentials -------------------------------------------------------------------------

VERIFY_CONFIG = """\
state_url: sqlite:///{db}
aws:
  region: us-east-1
retry:
  attempts: 2
  wait_initial_seconds: 0
  wait_max_seconds: 0
policies:
  - name: prod-verify
    select:
      clusters: ["*"]
    verify:
      schedule: "0 5 * * 0"
      connect:
        db_user: snapworker-verify
        db_name: dev
{override}      checks:
        - name: sales-present
          sql: "select count(*) from sales"
          expect: {{min: 1}}
"""


@pytest.mark.e2e
@pytest.mark.parametrize("override", ["", "        host: 127.0.0.1\n        port: 5439\n"])
def test_credentials_for_an_unknown_cluster_is_a_usage_error(
    sandbox: Sandbox, override: str
) -> None:
    """Exit 2 naming the cluster, before any GetClusterCredentials; with or without a
    host/port override (with one, the cluster was not looked up before)."""
    sandbox.cluster("prod-a", env="prod")
    sandbox.config.write_text(VERIFY_CONFIG.format(db=sandbox.db, override=override))
    r = sandbox.cli("credentials", "--cluster", "nope")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith("snapworker: ") and "'nope'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stdout == ""
    # the known cluster still gets its connection string
    ok = sandbox.cli("credentials", "--cluster", "prod-a")
    assert ok.returncode == 0, ok.stderr
    assert "dbname=dev" in ok.stdout and "password" not in ok.stdout
