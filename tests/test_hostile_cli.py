"""Hostile input through the real CLI: every bad input is answered by the ``snapworker``
subprocess (``validate``, ``plan``, ``run``) with exit 2 and a message that names the place
(file and line where there is one, policy, field, option), with no traceback on either
stream, and before any AWS call (moto's call counter stays empty).

The catalogue: a representative share of ``tests/bad_configs/`` (the whole of it is checked
in-process by ``tests/test_config.py``), oversized and binary files, unusable ``state_url``
values, and bad command lines. A policy that selects no cluster is only a warning, in
``plan`` and in ``validate --aws`` (which reads the cluster list; plain ``validate`` makes no
AWS call).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from snapworker.config import MAX_CONFIG_BYTES
from snapworker.sandbox import moto_ext
from tests.e2e_support import CONFIG, Sandbox
from tests.test_config import BAD, CATALOGUE

pytestmark = pytest.mark.e2e

# bad_configs run through the CLI: one or more of every family (YAML, unknown keys, types,
# accounts, cron, time zones, retention, durations, names AWS would refuse in snapshot ids,
# duplicates, state/AWS settings, everything at once)
FROM_CATALOGUE = [
    "malformed_unclosed_flow_sequence.yaml",
    "tab_indentation.yaml",
    "duplicate_top_level_key.yaml",
    "python_object_tag.yaml",
    "yaml_alias_bomb.yaml",
    "top_level_list.yaml",
    "empty_file.yaml",
    "unknown_top_level_key.yaml",
    "unknown_key_in_retention.yaml",
    "wrong_type_keep_last_string.yaml",
    "wrong_type_policies_mapping.yaml",
    "account_11_digits.yaml",
    "account_letters.yaml",
    "cron_garbage.yaml",
    "cron_six_fields.yaml",
    "bad_timezone.yaml",
    "retention_negative_keep_last.yaml",
    "retention_absurd_max_age.yaml",
    "keep_within_bad_unit.yaml",
    "max_deletes_negative.yaml",
    "duplicate_policy_names.yaml",
    "duplicate_policy_names_case.yaml",
    "policy_name_double_hyphen.yaml",
    "policy_name_trailing_hyphen.yaml",
    "policy_name_64_chars.yaml",
    "state_url_unknown_backend.yaml",
    "endpoint_url_ftp.yaml",
    "max_attempts_out_of_range.yaml",
    "many_errors_at_once.yaml",
]
COMMANDS = ("validate", "plan", "run")


@dataclass(frozen=True)
class Case:
    """One bad input: how to make it (in a fresh directory), the command line, and the
    fragments that must all appear in stderr."""

    name: str
    make: Callable[[Path, Sandbox], tuple[list[str], dict[str, str]]]
    expect: tuple[str, ...]
    cwd_config: bool = False  # run in a directory that holds no snapworker.yaml


def _catalogue_case(name: str, index: int) -> Case:
    command = COMMANDS[index % len(COMMANDS)]
    path = BAD / name

    def make(tmp: Path, box: Sandbox) -> tuple[list[str], dict[str, str]]:
        return [command, "--config", str(path)], {}

    # the first fragment pins the line (":N: ...") where there is one
    return Case(f"{name} ({command})", make, (str(path), CATALOGUE[name][0]))


def _file(text: bytes | str, name: str, command: str) -> Callable[..., tuple[list[str], dict]]:
    def make(tmp: Path, box: Sandbox) -> tuple[list[str], dict[str, str]]:
        path = tmp / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return [command, "-c", str(path)], {}

    return make


def _state_url(url: str, command: str) -> Callable[..., tuple[list[str], dict]]:
    def make(tmp: Path, box: Sandbox) -> tuple[list[str], dict[str, str]]:
        path = tmp / "cfg.yaml"
        text = CONFIG.format(db="unused").replace("sqlite:///unused", url.format(tmp=tmp))
        path.write_text(text)
        return [command, "-c", str(path)], {}

    return make


def _args(*args: str, **env: str) -> Callable[..., tuple[list[str], dict]]:
    def make(tmp: Path, box: Sandbox) -> tuple[list[str], dict[str, str]]:
        return [a.format(tmp=tmp, config=box.config) for a in args], dict(env)

    return make


def _directory_config(tmp: Path, box: Sandbox) -> tuple[list[str], dict[str, str]]:
    (tmp / "conf.d").mkdir()
    return ["plan", "-c", str(tmp / "conf.d")], {}


OVERSIZED = "policies:\n  - name: p\n" + ("# " + "x" * 98 + "\n") * (MAX_CONFIG_BYTES // 100 + 1)

CASES: list[Case] = [
    *(_catalogue_case(name, i) for i, name in enumerate(FROM_CATALOGUE)),
    # files that are not configurations at all
    Case(
        "oversized (2 MiB of comments)",
        _file(OVERSIZED * 2, "big.yaml", "run"),
        ("big.yaml", "is too large: the limit is 1 MiB"),
    ),
    Case(
        "binary (PNG)",
        _file(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "img.yaml", "plan"),
        ("img.yaml:", "contains a NUL byte"),
    ),
    Case(
        "binary without NUL (gzip)",
        _file(b"\x1f\x8b\x08\x08" + bytes(range(0x80, 0x100)) * 4, "gz.yaml", "validate"),
        ("gz.yaml:1:", "is not UTF-8 text"),
    ),
    Case(
        "UTF-16",
        _file("policies:\n  - name: p\n".encode("utf-16"), "u16.yaml", "run"),
        ("u16.yaml:1:", "NUL byte"),
    ),
    Case(
        "missing config file", _args("run", "-c", "{tmp}/nope.yaml"), ("nope.yaml", "no such file")
    ),
    Case("a directory as config", _directory_config, ("conf.d", "is a directory")),
    Case(
        "empty SNAPWORKER_CONFIG, no ./snapworker.yaml",
        _args("plan", SNAPWORKER_CONFIG=""),
        ("snapworker.yaml", "no such file"),
        cwd_config=True,
    ),
    Case(
        "SNAPWORKER_CONFIG naming a missing file",
        _args("run", SNAPWORKER_CONFIG="/nonexistent/s.yaml"),
        ("/nonexistent/s.yaml", "no such file"),
    ),
    # unusable state_url
    Case(
        "state_url: unknown driver",
        _state_url("nosuchdb:///x.db", "run"),
        ("state_url", "nosuchdb"),
    ),
    Case(
        "state_url: uninstalled driver",
        _state_url("mysql+nosuchdriver://u@h/db", "plan"),
        ("state_url", "nosuchdriver"),
    ),
    Case(
        "state_url: DBAPI not installed",
        _state_url("postgresql+pg8000://u@localhost/db", "run"),
        ("state DB", "pg8000"),
    ),
    Case(
        "state_url: a directory",
        _state_url("sqlite:///{tmp}", "run"),
        ("state DB", "is a directory"),
    ),
    Case(
        "state_url: path under a file",
        _state_url("sqlite:///{tmp}/cfg.yaml/state.db", "plan"),
        ("state DB", "cfg.yaml/state.db"),
    ),
    Case(
        "state_url: unwritable path",
        _state_url("sqlite:////proc/snapworker/state.db", "run"),
        ("state DB", "/proc/snapworker/state.db"),
    ),
    # bad command lines
    Case("--format xml", _args("plan", "--format", "xml"), ("--format", "xml")),
    Case("status --format yaml", _args("status", "-f", "yaml"), ("--format", "yaml")),
    Case("unknown option", _args("run", "--dry-run"), ("No such option", "--dry-run")),
    Case("--policy nope (run)", _args("run", "--policy", "nope"), ("'nope'", "prod-nightly")),
    Case("--policy nope (plan)", _args("plan", "-p", "nope"), ("'nope'", "prod-nightly")),
    Case("--config without a value", _args("validate", "--config"), ("--config", "requires")),
    Case("unexpected argument", _args("validate", "extra"), ("unexpected extra argument",)),
    Case("unknown command", _args("frobnicate"), ("No such command", "frobnicate")),
]


def _run(box: Sandbox, case: Case, tmp: Path) -> tuple[Case, subprocess.CompletedProcess[str]]:
    tmp.mkdir()
    args, env = case.make(tmp, box)
    return case, subprocess.run(
        [sys.executable, "-m", "snapworker", *args],
        env=box.env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp if case.cwd_config else box.tmp,
    )


def test_hostile_inputs_refused_with_exit_2_naming_the_place(
    sandbox: Sandbox, record_property: Any
) -> None:
    box = sandbox
    box.cluster("prod-a", env="prod")  # there is something to act on, were a run to start
    box.automated("prod-a", 1)
    moto_ext.reset_call_counts()
    assert len(CASES) >= 30
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda ic: _run(box, ic[1], box.tmp / f"case{ic[0]}"), enumerate(CASES))
        )
    problems = []
    for case, r in results:
        out = r.stdout + r.stderr
        if r.returncode != 2:
            problems.append(f"{case.name}: exit {r.returncode}\n{out}")
        if "Traceback" in out:
            problems.append(f"{case.name}: traceback\n{out}")
        missing = [f for f in case.expect if f not in r.stderr]
        if missing:
            problems.append(f"{case.name}: stderr lacks {missing}\n{r.stderr}")
    assert not problems, "\n\n".join(problems)
    calls = moto_ext.call_counts()
    assert calls == {}, calls
    assert not box.snapshots().keys() - {s for s in box.snapshots() if s.startswith("rs:")}
    line = (
        f"[hostile-cli] {len(CASES)} bad inputs refused by the CLI with exit 2, the place named, "
        f"no traceback, {sum(calls.values())} AWS calls "
        f"({len(FROM_CATALOGUE)} from tests/bad_configs, {len(CASES) - len(FROM_CATALOGUE)} "
        "files, state URLs and command lines)"
    )
    print(line)
    record_property("figure", line)


# -------------------------------------------------------------- no cluster: a warning only

TWO_POLICIES = (
    CONFIG
    + """\
  - name: analytics
    select:
      clusters: ["analytics-*"]
    copy_automated: true
    retention:
      keep_last: 3
"""
)


def test_policy_selecting_no_cluster_is_a_warning_in_plan(sandbox: Sandbox) -> None:
    box = sandbox
    box.write_config(TWO_POLICIES)
    box.cluster("prod-a", env="prod")
    r = box.cli("plan")
    assert r.returncode == 0, r.stderr
    assert "warning: analytics: selects no cluster" in r.stderr
    assert "prod-nightly: selects no cluster" not in r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_validate_makes_no_aws_call_unless_asked(sandbox: Sandbox) -> None:
    box = sandbox
    box.write_config(TWO_POLICIES)
    box.cluster("prod-a", env="prod")
    box.cluster("dev-a", env="dev")
    moto_ext.reset_call_counts()
    plain = box.cli("validate")
    assert plain.returncode == 0 and "ok (2 policies)" in plain.stdout
    assert "warning" not in plain.stderr
    assert moto_ext.call_counts() == {}

    checked = box.cli("validate", "--aws")
    assert checked.returncode == 0, checked.stderr
    assert "ok (2 policies)" in checked.stdout
    assert "prod-nightly: selects prod-a" in checked.stdout
    assert "warning: analytics: selects no cluster" in checked.stderr
    assert "prod-nightly" not in checked.stderr
    # Read-only, and nothing else: the clusters, and the snapshots (for the ones tagged for
    # a policy the config no longer defines, issue 18).
    assert moto_ext.call_counts() == {"DescribeClusters": 1, "DescribeClusterSnapshots": 1}
