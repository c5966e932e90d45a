"""Configuration: the shipped examples load; every hostile input is refused, precisely.

The hostile-input catalogue is ``tests/bad_configs/`` (one small file per case) plus the
byte-level cases generated below (oversized, binary, NUL, non-UTF-8, ...). Each bad input
must raise ConfigError and nothing else; every problem names the file first, then the line,
the policy and the field where there is one.
"""

from __future__ import annotations

import ast
import dataclasses
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from snapworker.adapters.aws.redshift import RedshiftGateway
from snapworker.config import (
    MAX_CONFIG_BYTES,
    Config,
    ConfigError,
    CreateSpec,
    Policy,
    Problem,
    Retention,
    ShareSpec,
    load_config,
    resolve_config_path,
)
from snapworker.config.loader import locate
from snapworker.config.risks import (
    config_warnings,
    copy_overlaps,
    copy_overlaps_on,
    shares_with_owner,
)
from snapworker.core import policy as core_policy
from snapworker.core.durations import format_duration, parse_duration
from snapworker.entrypoints.cli import app
from tests import factories
from tests.e2e_support import ACCOUNT, Sandbox

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "config"
BAD = Path(__file__).resolve().parent / "bad_configs"

# --------------------------------------------------------------------------------------------
# The shipped examples
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["example.yaml", "minimal.yaml", "gfs.yaml", "sandbox.yaml", "fleet.yaml"]
)
def test_shipped_examples_load(name: str) -> None:
    config = load_config(EXAMPLES / name)
    assert config.policies
    assert config.source_path == (EXAMPLES / name).absolute()


def test_example_is_the_design_example() -> None:
    config = load_config(EXAMPLES / "example.yaml")
    assert config.state_url == "sqlite:///snapworker.db"
    assert config.aws.region == "us-east-1"
    assert config.aws.profile is None and config.aws.endpoint_url is None
    (policy,) = config.policies
    assert policy.name == "prod-nightly"
    assert policy.select.clusters == ["prod-*"]
    assert policy.select.tags == {"env": "prod"}
    assert policy.create == CreateSpec(schedule="0 3 * * *", timezone="UTC")
    assert policy.copy_automated is True
    assert policy.share.accounts == ["111122223333", "amazon-redshift-support"]
    assert policy.retention.max_age_days == 35
    assert policy.retention.keep_last == 3
    assert policy.limits.max_deletes_per_run == 20


def test_sandbox_config() -> None:
    config = load_config(EXAMPLES / "sandbox.yaml")
    assert config.aws.region == "us-east-1"
    assert config.state_url == "sqlite:///snapworker-demo.db"
    policy = config.policy("prod-nightly")
    assert policy.select.clusters == ["prod-*"]
    assert policy.select.tags == {"env": "prod"}
    assert policy.create is not None and policy.create.schedule == "0 3 * * *"
    assert policy.copy_automated
    assert policy.share.accounts == ["111122223333", "amazon-redshift-support"]
    assert (policy.retention.max_age_days, policy.retention.keep_last) == (35, 3)
    assert policy.limits.max_deletes_per_run == 20


def test_sandbox_config_is_the_demo_config(tmp_path: Path) -> None:
    demo = pytest.importorskip("snapworker.entrypoints.demo")
    path = tmp_path / "demo.yaml"
    path.write_text(demo.DEMO_CONFIG)
    demo_config, sandbox = load_config(path), load_config(EXAMPLES / "sandbox.yaml")
    assert demo_config.model_dump() == sandbox.model_dump()


def test_gfs_config() -> None:
    config = load_config(EXAMPLES / "gfs.yaml")
    gfs = config.policy("warehouse-gfs")
    r = gfs.retention
    assert (r.keep_last, r.keep_daily, r.keep_weekly, r.keep_monthly, r.keep_yearly) == (
        3,
        7,
        5,
        12,
        2,
    )
    assert r.keep_within == timedelta(days=2)
    assert gfs.share.unshare_after == timedelta(days=30)
    assert gfs.share.revoke_unlisted is False
    assert gfs.hold_tag == "snapworker:hold"
    assert gfs.timezone == "Europe/Paris"
    staging = config.policy("staging-weekly")
    assert staging.retention.keep_within == timedelta(days=10)
    assert staging.hold_tag == "legal-hold"
    assert staging.timezone == "UTC"


def test_minimal_config_takes_defaults() -> None:
    config = load_config(EXAMPLES / "minimal.yaml")
    assert config.state_url == "sqlite:///snapworker.db"
    assert config.aws.max_attempts == 3
    assert (config.retry.attempts, config.retry.wait_initial_seconds) == (5, 1.0)
    assert config.retry.wait_max_seconds == 30.0
    d = config.daemon
    assert (d.reconcile_interval_seconds, d.poll_creating_seconds, d.history_days) == (300, 30, 90)
    assert d.http is None and d.sqs_queue_url is None and d.delete_bad_messages is True
    (policy,) = config.policies
    assert policy.select.clusters == ["*"] and policy.select.tags == {}
    assert policy.create is None
    assert policy.share.accounts == [] and policy.share.unshare_after is None
    assert policy.hold_tag == "snapworker:hold"
    assert policy.timezone == "UTC"
    assert policy.limits.max_deletes_per_run == 20


# --------------------------------------------------------------------------------------------
# Models, built in code
# --------------------------------------------------------------------------------------------


def test_models_are_frozen_and_forbid_extras() -> None:
    config = Config.model_validate({"policies": [{"name": "p"}]})
    with pytest.raises(ValidationError):
        setattr(config, "state_url", "sqlite:///other.db")  # noqa: B010
    with pytest.raises(ValidationError, match="extra"):
        Policy.model_validate({"name": "p", "colour": "blue"})


def test_has_rules() -> None:
    assert not Retention().has_rules
    assert Retention(keep_last=0).has_rules
    assert Retention(keep_within=timedelta(hours=1)).has_rules
    assert Retention.model_validate({"keep_within": "1d12h"}).keep_within == timedelta(hours=36)


def test_retention_accepts_unlimited_and_refuses_other_negatives() -> None:
    assert Retention(keep_daily=-1).keep_daily == -1
    with pytest.raises(ValidationError, match=r"must be -1 or between 0 and 100000 \(got -2\)"):
        Retention(keep_daily=-2)


def test_policy_lookup() -> None:
    config = Config.model_validate({"policies": [{"name": "prod"}, {"name": "Staging"}]})
    assert config.policy("prod").name == "prod"
    assert config.policy("staging").name == "Staging"
    with pytest.raises(KeyError, match="no policy named 'nope'"):
        config.policy("nope")
    assert config.source_path is None


def _same_values(core_view: object, model: object, where: str) -> None:
    """Every attribute of the core's view equals the config model's, recursively."""
    for f in dataclasses.fields(core_view):  # type: ignore[arg-type]
        mine, theirs = getattr(core_view, f.name), getattr(model, f.name)
        if dataclasses.is_dataclass(mine):
            _same_values(mine, theirs, f"{where}.{f.name}")
        elif isinstance(mine, tuple):
            assert mine == tuple(theirs), f"{where}.{f.name}"
        else:
            assert mine == theirs, f"{where}.{f.name}"


@pytest.mark.parametrize("name", ["example.yaml", "gfs.yaml", "sandbox.yaml", "verify.yaml"])
def test_the_core_reads_the_same_policy(name: str) -> None:
    """``Policy.core`` is what the planner reads: the same values, plain frozen data."""
    for policy in load_config(EXAMPLES / name).policies:
        view = policy.core
        assert isinstance(view, core_policy.Policy)
        assert view is policy.core  # built once per model
        assert policy.model_copy(update={"hold_tag": "legal"}).core.hold_tag == "legal"
        _same_values(view, policy, policy.name)
        assert view.timezone == policy.timezone
        assert view.retention.has_rules == policy.retention.has_rules
        assert (view.verify is None) == (policy.verify is None)
        with pytest.raises(dataclasses.FrozenInstanceError):
            view.name = "other"  # type: ignore[misc]


def test_the_core_imports_nothing_from_the_config() -> None:
    """The core has its own policy type (``snapworker.core.policy``): no core module imports
    ``snapworker.config``, not even for types."""
    core_dir = ROOT / "snapworker" / "core"
    for path in sorted(core_dir.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for module in names:
                assert not module.startswith("snapworker.") or module.startswith(
                    "snapworker.core"
                ), f"{path.name} imports {module}"


def test_duplicates_refused_in_code_too() -> None:
    with pytest.raises(ValidationError, match="duplicate policy name 'P'"):
        Config.model_validate({"policies": [{"name": "p"}, {"name": "P"}]})
    with pytest.raises(ValidationError, match="duplicate account"):
        ShareSpec(accounts=["111122223333", "111122223333"])


@pytest.mark.parametrize(
    ("written", "held"),
    [
        ("0 3 * * *", "0 3 * * *"),
        ("  0  3 *   * * ", "0 3 * * *"),
        ("@daily", "0 0 * * *"),
        ("@Hourly", "0 * * * *"),
        ("@weekly", "0 0 * * 0"),
        ("*/15 1-5 1,15 jan-jun mon-fri", "*/15 1-5 1,15 jan-jun mon-fri"),
        ("0 3 * * 7", "0 3 * * 7"),
        ("0 0 29 2 *", "0 0 29 2 *"),
    ],
)
def test_cron_forms_accepted_and_normalised(written: str, held: str) -> None:
    assert CreateSpec(schedule=written).schedule == held


@pytest.mark.parametrize(
    "schedule",
    ["0 3 * * * *", "0 0 3 * * * 2030", "60 * * * *", "0 3 ? * *", "0 3 * * 1#2", "@reboot", ""],
)
def test_cron_forms_refused(schedule: str) -> None:
    with pytest.raises(ValidationError):
        CreateSpec(schedule=schedule)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("61 3 * * *", "minute 61 out of range 0-59"),
        ("0 24 * * *", "hour 24 out of range 0-23"),
        ("0 3 0 * *", "day-of-month 0 out of range 1-31"),
        ("0 3 1-32 * *", "day-of-month 32 out of range 1-31"),
        ("0 3 * 13 *", "month 13 out of range 1-12"),
        ("0 3 * * mon,8", "day-of-week 8 out of range 0-7"),
        ("1,2,99/5 * * * *", "minute 99 out of range 0-59"),
        ("*/0 * * * *", "minute step 0 in '*/0': a step is at least 1"),
    ],
)
def test_a_cron_error_names_the_field_and_the_value(
    schedule: str, message: str, tmp_path: Path
) -> None:
    text = f'policies:\n  - name: p\n    create:\n      schedule: "{schedule}"\n'
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    (problem,) = info.value.problems
    assert (problem.line, problem.policy, problem.field) == (4, "p", "create.schedule")
    assert problem.message == f"{message} (got {schedule!r})"


def test_no_pydantic_internals_in_messages(tmp_path: Path) -> None:
    """A field typed as a union (``min: int | float``) is named as written, once, and the
    message says what the field takes, not pydantic's member tags (``min.int``)."""
    text = (
        "policies:\n"
        "  - name: p\n"
        "    verify:\n"
        '      schedule: "0 5 * * 0"\n'
        "      connect: {db_user: swv, sslmode: nope}\n"
        "      checks:\n"
        "        - {name: a, sql: select 1, expect: {min: '5'}}\n"
        "        - {name: b, sql: select 1, expect: {equals: [1]}}\n"
        "        - {name: c, sql: select 1, expect: {min: 0.5}}\n"
        "  - name: q\n"
        "    verify: {schedule: '0 5 * * 0', connect: {db_user: swv}, checks: []}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    shown = [(p.line, p.policy, p.field, p.message) for p in info.value.problems]
    assert shown == [
        (
            5,
            "p",
            "verify.connect.sslmode",
            "must be one of 'disable', 'allow', 'prefer', 'require', 'verify-ca' or "
            "'verify-full' (got 'nope')",
        ),
        (7, "p", "verify.checks[0].expect.min", "must be a number (got '5')"),
        (
            8,
            "p",
            "verify.checks[1].expect.equals",
            "must be a number, a string or true/false (got a list)",
        ),
        (11, "q", "verify.checks", "must have at least 1 item"),
    ]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/New_York", "Etc/GMT+5"])
def test_time_zones_accepted(zone: str) -> None:
    assert CreateSpec(schedule="0 3 * * *", timezone=zone).timezone == zone


@pytest.mark.parametrize("zone", ["utc", "Mars/Olympus", "", "../../etc/passwd", "localtime"])
def test_time_zones_refused(zone: str) -> None:
    with pytest.raises(ValidationError):
        CreateSpec(schedule="0 3 * * *", timezone=zone)


def test_state_url_message_never_echoes_a_password() -> None:
    for url in ["nosuchdb://user:hunter2@host/db", "://user:hunter2@"]:
        with pytest.raises(ValidationError) as info:
            Config.model_validate({"state_url": url, "policies": [{"name": "p"}]})
        assert all("hunter2" not in e["msg"] for e in info.value.errors())
    with pytest.raises(ConfigError) as error:
        load_config(BAD / "state_url_unknown_backend.yaml")
    assert "s3cret" not in str(error.value)


def test_postgres_state_url_is_accepted() -> None:
    url = "postgresql+psycopg://snapworker@db.internal:5432/snapworker"
    assert Config.model_validate({"state_url": url, "policies": [{"name": "p"}]}).state_url == url


# --------------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12h", timedelta(hours=12)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("2w3d", timedelta(days=17)),
        ("1w1d1h", timedelta(days=8, hours=1)),
        ("0d1h", timedelta(hours=1)),
        ("36500d", timedelta(days=36500)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("3x", "must be a duration"),
        ("", "must be a duration"),
        ("d", "must be a duration"),
        ("1d1w", "must be a duration"),
        ("1h1h", "must be a duration"),
        ("1.5d", "must be a duration"),
        ("-1d", "must be a duration"),
        ("1 d", "must be a duration"),
        ("1D", "must be a duration"),
        ("0h", "longer than zero"),
        ("0w0d0h", "longer than zero"),
        ("36501d", "at most 100 years"),
        ("9" * 5000 + "w", "at most 100 years"),
    ],
)
def test_parse_duration_refuses(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_duration(text)


def test_parse_duration_refuses_non_strings() -> None:
    with pytest.raises(ValueError, match="must be a duration"):
        parse_duration(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(hours=36), "1d12h"),
        (timedelta(days=14), "2w"),
        (timedelta(days=30), "30d"),
        (timedelta(hours=5), "5h"),
        (timedelta(0), "0h"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(seconds=-3600), "-1h"),
    ],
)
def test_format_duration(td: timedelta, text: str) -> None:
    assert format_duration(td) == text


@given(st.integers(min_value=1, max_value=36500 * 24))
def test_format_is_the_inverse_of_parse(hours: int) -> None:
    td = timedelta(hours=hours)
    assert parse_duration(format_duration(td)) == td


# --------------------------------------------------------------------------------------------
# Loading details
# --------------------------------------------------------------------------------------------


def test_resolve_config_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNAPWORKER_CONFIG", raising=False)
    assert resolve_config_path(None) == Path("snapworker.yaml")
    monkeypatch.setenv("SNAPWORKER_CONFIG", "/etc/snapworker/prod.yaml")
    assert resolve_config_path(None) == Path("/etc/snapworker/prod.yaml")
    assert resolve_config_path("here.yaml") == Path("here.yaml")
    monkeypatch.setenv("SNAPWORKER_CONFIG", "")
    assert resolve_config_path(None) == Path("snapworker.yaml")


def _write(tmp_path: Path, text: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_accepted_yaml_details(tmp_path: Path) -> None:
    text = (
        "\ufeff# a BOM, CRLF line ends, an explicit core tag and a date-like string\r\n"
        "policies:\r\n"
        "  - name: !!str p1\r\n"
        "    select:\r\n"
        "      tags: {since: 2026-01-01, 'on': 'yes'}\r\n"
    )
    config = load_config(_write(tmp_path, text))
    assert config.policies[0].name == "p1"
    assert config.policies[0].select.tags == {"since": "2026-01-01", "on": "yes"}


def test_yaml_keys_are_always_text(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, "policies:\n  - name: p\n    no: 1\n"))
    assert "config.yaml:3: policy 'p': no: unknown key 'no'" in str(info.value)


def test_problem_format() -> None:
    problem = Problem(
        "config.yaml", 14, "prod-nightly", "retention.keep_last", "must be -1 or between ..."
    )
    assert str(problem) == (
        "config.yaml:14: policy 'prod-nightly': retention.keep_last: must be -1 or between ..."
    )
    assert str(Problem("c.yaml", None, None, "", "no such file")) == "c.yaml: no such file"


def test_config_error_lists_every_problem_one_per_line() -> None:
    path = BAD / "many_errors_at_once.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems) >= 9
    assert lines == [str(p) for p in info.value.problems]
    assert [p.line for p in info.value.problems] == sorted(p.line or 0 for p in info.value.problems)


# --------------------------------------------------------------------------------------------
# The hostile-input catalogue
# --------------------------------------------------------------------------------------------

P = "policy 'prod-nightly'"

# file -> fragments, each of which must appear in one problem (after the file name).
# A fragment starting with ":N:" pins the line.
CATALOGUE: dict[str, list[str]] = {
    # --- not YAML, or YAML we refuse
    "malformed_unclosed_flow_sequence.yaml": [":5: invalid YAML: expected ',' or ']'"],
    "malformed_bad_indentation.yaml": [":4: invalid YAML:", "check the indentation"],
    "tab_indentation.yaml": [":3: invalid YAML: found character '\\t'", "not tabs"],
    "multiple_documents.yaml": [":3: invalid YAML: expected a single document"],
    "duplicate_top_level_key.yaml": [":4: duplicate key 'state_url' (first at line 3)"],
    "duplicate_key_in_retention.yaml": [":6: duplicate key 'keep_last' (first at line 4)"],
    # aliases are accepted (tests/test_yaml_anchors.py); a block of its own at the top is not
    "yaml_alias.yaml": [":1: defaults: unknown key 'defaults'"],
    "yaml_alias_bomb.yaml": [":5: YAML aliases expand too far here", "billion laughs"],
    "yaml_quadratic_blowup.yaml": [":4: YAML aliases expand too far here"],
    "yaml_recursive_alias.yaml": [":3: YAML alias *loop refers to a node that contains it"],
    "merge_key_of_a_scalar.yaml": [":5: a YAML merge key (<<) takes a mapping or a list of"],
    "python_object_tag.yaml": [":3: YAML tag '!!python/object/apply:os.system' is not allowed"],
    "deeply_nested.yaml": [":1: nested more than 32 levels deep"],
    "huge_integer.yaml": [":4: number too long (5000 characters)"],
    # --- not a configuration at the top
    "top_level_list.yaml": [":1: the top level must be a mapping", "not a list"],
    "top_level_scalar.yaml": [":1: the top level must be a mapping", "'just a string'"],
    "empty_file.yaml": [": is empty"],
    "only_comments.yaml": [": is empty"],
    "policies_missing.yaml": [":1: policies: is required"],
    "policies_empty_list.yaml": [":2: policies: must define at least one policy"],
    # --- unknown keys, at every level
    "unknown_top_level_key.yaml": [":2: polices: unknown key 'polices' (did you mean 'policies'?)"],
    "unknown_key_in_aws.yaml": [":3: aws.regoin: unknown key 'regoin' (did you mean 'region'?)"],
    "unknown_key_in_retry.yaml": [":3: retry.backoff: unknown key 'backoff' (allowed: attempts,"],
    "unknown_key_in_daemon_http.yaml": [":5: daemon.http.tls: unknown key 'tls'"],
    "unknown_key_in_policy.yaml": [f":3: {P}: copy_automatic: unknown key", "'copy_automated'"],
    "unknown_key_in_select.yaml": [f":4: {P}: select.cluster: unknown key 'cluster'"],
    "unknown_key_in_create.yaml": [f":5: {P}: create.tz: unknown key 'tz'"],
    "unknown_key_in_share.yaml": [f":5: {P}: share.unshare_afer: unknown key", "'unshare_after'"],
    "unknown_key_in_retention.yaml": [
        f":5: {P}: retention.keep_lst: unknown key 'keep_lst' (did you mean 'keep_last'?)"
    ],
    "unknown_key_in_limits.yaml": [f":4: {P}: limits.max_deletes: unknown key"],
    # --- wrong types, everywhere
    "wrong_type_policies_mapping.yaml": [":2: policies: must be a list (got a mapping)"],
    "wrong_type_policy_scalar.yaml": [":2: policies[0]: must be a mapping (got 'prod-nightly')"],
    "wrong_type_aws_list.yaml": [":2: aws: must be a mapping (got a list)"],
    "wrong_type_keep_last_string.yaml": [
        f":4: {P}: retention.keep_last: must be an integer (got '3')"
    ],
    "wrong_type_keep_last_float.yaml": [f":4: {P}: retention.keep_last: must be an integer"],
    "wrong_type_copy_automated_string.yaml": [
        f":3: {P}: copy_automated: must be true or false (got 'true')"
    ],
    "wrong_type_clusters_string.yaml": [f":4: {P}: select.clusters: must be a list"],
    "wrong_type_tags_list.yaml": [f":4: {P}: select.tags: must be a mapping (got a list)"],
    "wrong_type_tag_value_number.yaml": [f":4: {P}: select.tags.version: must be a string"],
    "wrong_type_http_port_string.yaml": [":2: daemon.http.port: must be an integer (got '9108')"],
    "wrong_type_max_attempts_bool.yaml": [":2: aws.max_attempts: must be an integer (got true)"],
    "wrong_type_policy_name_number.yaml": [":2: policies[0].name: must be a string (got 42)"],
    # --- accounts
    "account_11_digits.yaml": [f":4: {P}: share.accounts[0]: an AWS account id has exactly 12"],
    "account_letters.yaml": [f":4: {P}: share.accounts[0]: must be a 12-digit AWS account id"],
    "account_support_alias_trailing_space.yaml": [
        f":6: {P}: share.accounts[1]: must not have leading or trailing spaces"
    ],
    "account_duplicated.yaml": [
        f":7: {P}: share.accounts[2]: duplicate account '111122223333' (already at accounts[0])"
    ],
    "account_unquoted_number.yaml": [f":4: {P}: share.accounts[0]: write account ids as quoted"],
    # --- schedules and time zones
    "cron_six_fields.yaml": [f":4: {P}: create.schedule: has 6 fields; only standard 5-field"],
    "cron_out_of_range.yaml": [f":4: {P}: create.schedule: hour 25 out of range 0-23"],
    "cron_garbage.yaml": [f":4: {P}: create.schedule: must be a 5-field cron expression"],
    "cron_never_fires.yaml": [f":4: {P}: create.schedule: never fires"],
    "cron_nonstandard_last_day.yaml": [f":4: {P}: create.schedule: the day-of-month field 'L'"],
    "cron_missing_schedule.yaml": [f":4: {P}: create.schedule: is required"],
    "bad_timezone.yaml": [f":5: {P}: create.timezone: unknown time zone", "'Europe/Paris'?"],
    "bad_timezone_offset.yaml": [f":5: {P}: create.timezone: unknown time zone '+02:00'"],
    # --- retention and durations
    "retention_negative_keep_last.yaml": [
        f":5: {P}: retention.keep_last: must be -1 or between 0 and 100000 (got -5)"
    ],
    "retention_absurd_max_age.yaml": [
        f":4: {P}: retention.max_age_days: must be between 1 and 36500 (got 1000000)"
    ],
    "retention_zero_max_age.yaml": [f":4: {P}: retention.max_age_days: must be between 1"],
    "retention_absurd_keep_daily.yaml": [f":4: {P}: retention.keep_daily: must be -1 or between"],
    "keep_within_bad_unit.yaml": [f":4: {P}: retention.keep_within: must be a duration", "'3x'"],
    "keep_within_number.yaml": [f":4: {P}: retention.keep_within: must be a duration"],
    "unshare_after_zero.yaml": [f":5: {P}: share.unshare_after: must be longer than zero"],
    "max_deletes_negative.yaml": [
        f":4: {P}: limits.max_deletes_per_run: must be between 0 and 10000 (got -1)"
    ],
    # --- policy names
    "duplicate_policy_names.yaml": [f":4: {P}: name: duplicate policy name 'prod-nightly'"],
    "duplicate_policy_names_case.yaml": [
        ":3: policy 'Prod-Nightly': name: duplicate policy name",
        "case-insensitively",
    ],
    "duplicate_policy_names_with_other_errors.yaml": [
        f":4: {P}: retention.keep_last: must be -1",
        ":5: policy 'PROD-NIGHTLY': name: duplicate policy name",
    ],
    "policy_name_starts_with_digit.yaml": [":2: policy '1abc': name: must start with a letter"],
    "policy_name_double_hyphen.yaml": [":2: policy 'a--b': name: must not contain two"],
    "policy_name_trailing_hyphen.yaml": [":2: policy 'ab-': name: must not end with a hyphen"],
    "policy_name_underscore.yaml": [":2: policy 'a_b': name: may hold only letters, digits"],
    "policy_name_64_chars.yaml": [": name: must be at most 63 characters (got 64)"],
    "policy_name_empty.yaml": [":2: policies[0].name: must not be empty"],
    "policy_name_missing.yaml": [":3: policies[1].name: is required"],
    # --- AWS, state, daemon
    "state_url_unparsable.yaml": [":1: state_url: is not a SQLAlchemy database URL"],
    "state_url_unknown_backend.yaml": [":1: state_url: names a database backend", "'nosuchdb'"],
    "endpoint_url_ftp.yaml": [":2: aws.endpoint_url: must be an http:// or https:// URL"],
    "endpoint_url_no_host.yaml": [":2: aws.endpoint_url: must be an http:// or https:// URL"],
    "region_bad.yaml": [":2: aws.region: must be an AWS region name"],
    "max_attempts_out_of_range.yaml": [":2: aws.max_attempts: must be between 1 and 10 (got 0)"],
    "retry_waits_reversed.yaml": [":2: retry: wait_initial_seconds (60.0) must not exceed"],
    "poll_creating_too_slow.yaml": [":2: daemon.poll_creating_seconds: must be between 1 and 30"],
    "http_port_out_of_range.yaml": [":3: daemon.http.port: must be between 1 and 65535"],
    "hold_tag_aws_prefix.yaml": [f":3: {P}: hold_tag: must not start with 'aws:'"],
    "hold_tag_empty.yaml": [f":3: {P}: hold_tag: an AWS tag key has 1 to 128 characters"],
    "cluster_pattern_empty.yaml": [f":4: {P}: select.clusters[1]: must not be empty"],
    # --- everything at once: every problem is reported, not just the first
    "many_errors_at_once.yaml": [
        ":4: aws.max_attempts: must be between 1 and 10 (got 11)",
        f":8: {P}: create.schedule: has 6 fields",
        f":10: {P}: share.accounts[0]: an AWS account id has exactly 12 digits",
        f":12: {P}: retention.keep_last: must be -1 or between 0 and 100000 (got -5)",
        f":13: {P}: retention.keep_within: must be a duration",
        f":15: {P}: limits.max_deletes_per_run: must be between 0 and 10000 (got -1)",
        ":17: policy 'staging': hold_tag: must not start with 'aws:'",
        ":18: policies[2].name: is required",
        ":18: policies[2].copy_automated: must be true or false (got 'maybe')",
    ],
}


def _refused(path: Path) -> ConfigError:
    """Load ``path``; it must raise ConfigError, and nothing else."""
    try:
        load_config(path)
    except ConfigError as exc:
        error = exc
    except Exception as exc:  # pragma: no cover - the failure being tested for
        pytest.fail(f"{path.name}: {type(exc).__name__} escaped instead of ConfigError: {exc}")
    else:  # pragma: no cover
        pytest.fail(f"{path.name} loaded; it should have been refused")
    assert error.problems, "a ConfigError must carry at least one problem"
    for problem in error.problems:
        assert str(problem).startswith(str(path)), problem
        assert problem.file == str(path)
        assert "Traceback" not in str(problem)
    return error


def _check(path: Path, fragments: list[str]) -> None:
    error = _refused(path)
    messages = [str(p) for p in error.problems]
    for fragment in fragments:
        assert any(fragment in m[len(str(path)) :] for m in messages), (
            f"{path.name}: no problem contains {fragment!r}; got:\n" + "\n".join(messages)
        )


def test_catalogue_is_complete() -> None:
    on_disk = {p.name for p in BAD.iterdir()}
    assert on_disk == set(CATALOGUE), on_disk ^ set(CATALOGUE)
    assert len(CATALOGUE) >= 35
    for path in BAD.iterdir():
        assert path.stat().st_size < 16 * 1024, f"{path.name}: keep catalogue files small"


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_bad_config_is_refused(name: str) -> None:
    _check(BAD / name, CATALOGUE[name])


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_bad_config_refused_under_any_path_spelling(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The message names the file as the operator wrote it (here: relative).
    monkeypatch.chdir(BAD)
    error = _refused(Path(name))
    assert all(str(p).startswith(f"{name}:") for p in error.problems)


# --- byte-level and file-system cases, generated here rather than committed


def _oversized(tmp: Path) -> Path:
    filler = "# " + "x" * 98 + "\n"
    text = "policies:\n  - name: p\n" + filler * (MAX_CONFIG_BYTES // len(filler) + 1)
    return _write(tmp, text, "oversized.yaml")


def _binary(tmp: Path) -> Path:
    return _write(tmp, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "binary.png.yaml")


def _binary_without_nul(tmp: Path) -> Path:
    return _write(tmp, b"\x1f\x8b\x08\x08" + bytes(range(0x80, 0x100)) * 4, "gzip.yaml")


def _nul_byte(tmp: Path) -> Path:
    return _write(tmp, b"policies:\n  - name: p\x00\n", "nul.yaml")


def _latin1(tmp: Path) -> Path:
    return _write(tmp, "policies:\n  - name: p\n# caf\xe9\n".encode("latin-1"), "latin1.yaml")


def _utf16(tmp: Path) -> Path:
    return _write(tmp, "policies:\n  - name: p\n".encode("utf-16"), "utf16.yaml")


def _control_character(tmp: Path) -> Path:
    return _write(tmp, "policies:\n  - name: p\x07\n", "bell.yaml")


def _directory(tmp: Path) -> Path:
    path = tmp / "a-directory.yaml"
    path.mkdir()
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "does-not-exist.yaml"


def _under_a_file(tmp: Path) -> Path:
    return _write(tmp, "policies: []\n", "file.yaml") / "child.yaml"


def _fifo(tmp: Path) -> Path:
    if not hasattr(os, "mkfifo"):  # pragma: no cover
        pytest.skip("no FIFOs here")
    path = tmp / "pipe.yaml"
    os.mkfifo(path)
    return path


GENERATED: dict[str, tuple[Callable[[Path], Path], str]] = {
    "oversized": (_oversized, ": is too large: the limit is 1 MiB"),
    "binary": (_binary, ":3: contains a NUL byte: not a text file"),
    "binary without NUL": (_binary_without_nul, ":1: is not UTF-8 text (byte 0x8b)"),
    "NUL byte": (_nul_byte, ":2: contains a NUL byte"),
    "non-UTF-8": (_latin1, ":3: is not UTF-8 text (byte 0xe9)"),
    "UTF-16": (_utf16, ":1: contains a NUL byte"),
    "control character": (
        _control_character,
        ":2: invalid YAML: control character U+0007 is not allowed",
    ),
    "directory": (_directory, ": is a directory"),
    "missing file": (_missing, ": no such file"),
    "path under a file": (_under_a_file, ": no such file"),
    "FIFO": (_fifo, ": is not a regular file"),
}


@pytest.mark.parametrize("case", sorted(GENERATED))
def test_generated_bad_input_is_refused(case: str, tmp_path: Path) -> None:
    make, fragment = GENERATED[case]
    _check(make(tmp_path), [fragment])


def test_hostile_inputs_covered() -> None:
    assert len(CATALOGUE) + len(GENERATED) >= 90


# --- fuzz: whatever the bytes, a Config or a ConfigError, never anything else

VALID = (EXAMPLES / "example.yaml").read_bytes()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(VALID)),
            st.integers(min_value=0, max_value=8),
            st.binary(max_size=8)
            | st.sampled_from(
                [b"\t", b"&a ", b"*a", b"!!python/name:os.system ", b"- ", b": ", b"["]
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_config_never_escapes(tmp_path: Path, edits: list[tuple[int, int, bytes]]) -> None:
    data = bytearray(VALID)
    for at, cut, insert in edits:
        data[at : at + cut] = insert
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(bytes(data))
    try:
        load_config(path)
    except ConfigError as exc:
        assert all(str(p).startswith(str(path)) for p in exc.problems)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=300))
def test_arbitrary_text_never_escapes(tmp_path: Path, text: str) -> None:
    path = tmp_path / "arbitrary.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_config(path)
    except ConfigError as exc:
        assert all(str(p).startswith(str(path)) for p in exc.problems)


# --------------------------------------------------------------------------------------------
# Warnings, and the error only AWS can reveal (config.risks; `validate`, `plan`)
# --------------------------------------------------------------------------------------------

COPIERS = """\
policies:
  - name: nightly
    select:
      clusters: ["prod-*"]
    copy_automated: true
    retention: {keep_last: 3}
  - name: extra
    select:
      clusters: ["prod-a"]
    copy_automated: true
    retention: {keep_last: 3}
"""


def _risks(tmp_path: Path, text: str, account: str | None = None) -> list[str]:
    path = _write(tmp_path, text)
    config = load_config(path)  # loads: these are warnings, or errors only AWS can tell
    findings = config_warnings(config) + shares_with_owner(config, account)
    return [str(p) for p in locate(config, findings, str(path))]


def test_a_policy_with_no_retention_rule_is_a_warning(tmp_path: Path) -> None:
    text = (
        "policies:\n"
        "  - name: grows\n"
        "    copy_automated: true\n"
        "  - name: scheduled\n"
        "    create: {schedule: '0 3 * * *'}\n"
        "    retention: {}\n"
        "  - name: bounded-by-aws\n"
        "    copy_automated: true\n"
        "    select: {clusters: []}\n"
        "    retention: {fail_safe_days: 30}\n"
        "  - name: makes-nothing\n"
        "    share: {accounts: ['111122223333']}\n"
    )
    path = str(tmp_path / "config.yaml")
    why = (
        "no retention rule: nothing this policy makes ever expires, so its snapshots grow "
        "without bound"
    )
    assert [w.split(" (set ")[0] for w in _risks(tmp_path, text)] == [
        f"{path}:2: policy 'grows': retention: {why}",
        f"{path}:6: policy 'scheduled': retention: {why}",
    ]


@pytest.mark.parametrize(
    ("earlier", "later", "where"),
    [
        ('["prod-*"]', '["prod-a"]', "cluster 'prod-a'"),
        ('["prod-a", "x"]', '["prod-?"]', "cluster 'prod-a'"),
        ('["prod-*"]', '["dev-*", "prod-*"]', "any cluster matching 'prod-*'"),
        ('["*"]', '["prod-*"]', "any cluster matching both '*' and 'prod-*'"),
        ('["prod-*"]', '["prod-a*"]', "any cluster matching both 'prod-*' and 'prod-a*'"),
        ('["prod-*"]', '["dev-*"]', None),
        ('["prod-a"]', '["prod-b"]', None),
        ('["prod-*"]', "[]", None),
    ],
)
def test_two_policies_copying_the_same_cluster_are_a_warning(
    tmp_path: Path, earlier: str, later: str, where: str | None
) -> None:
    text = COPIERS.replace('["prod-a"]', "LATER").replace('["prod-*"]', earlier)
    text = text.replace("LATER", later)
    warnings = _risks(tmp_path, text)
    if where is None:
        assert warnings == []
        return
    assert warnings == [
        f"{tmp_path / 'config.yaml'}:10: policy 'extra': copy_automated: policy 'nightly' also "
        f"copies the automated snapshots of {where}: each policy makes its own copy of every "
        "one (`snapworker validate --aws` checks the real clusters)"
    ]


def test_copying_policies_apart_by_tag_or_not_copying_are_no_warning(tmp_path: Path) -> None:
    apart = COPIERS.replace('["prod-*"]', '["prod-*"]\n      tags: {env: prod}').replace(
        '["prod-a"]', '["prod-a"]\n      tags: {env: dev}'
    )
    assert _risks(tmp_path, apart) == []
    assert _risks(tmp_path, COPIERS.replace("copy_automated: true", "copy_automated: false")) == []


def test_copy_overlaps_on_the_real_clusters(tmp_path: Path) -> None:
    text = COPIERS.replace('["prod-a"]', '["*"]') + (
        "  - name: third\n"
        "    select: {clusters: ['prod-*', 'dev-*'], tags: {team: bi}}\n"
        "    copy_automated: true\n"
        "    retention: {keep_last: 3}\n"
    )
    path = _write(tmp_path, text)
    config = load_config(path)
    clusters = [
        factories.cluster("prod-a"),
        factories.cluster("prod-b", team="bi"),
        factories.cluster("dev-a", team="bi"),
        factories.cluster("other"),
        factories.cluster("prod-scratch", **{"snapworker:scratch": "x"}),
    ]
    found = copy_overlaps_on(config, clusters)
    assert [str(p) for p in locate(config, found)] == [
        f"{path}:10: policy 'extra': copy_automated: policy 'nightly' also copies the automated "
        "snapshots of cluster 'prod-a': each policy makes its own copy of every one",
        f"{path}:14: policy 'third': copy_automated: policy 'extra' also copies the automated "
        "snapshots of cluster 'dev-a': each policy makes its own copy of every one",
        f"{path}:14: policy 'third': copy_automated: policies 'nightly' and 'extra' also copy "
        "the automated snapshots of cluster 'prod-b': each policy makes its own copy of every one",
    ]


def test_sharing_with_the_owning_account_is_an_error(tmp_path: Path) -> None:
    text = COPIERS.replace(
        "    retention: {keep_last: 3}\n",
        "    share:\n      accounts: ['111122223333', '123456789012']\n"
        "    retention: {keep_last: 3}\n",
        1,
    ).replace('["prod-a"]', '["dev-a"]')
    assert _risks(tmp_path, text, account="999999999999") == []
    assert _risks(tmp_path, text, account=None) == []
    assert _risks(tmp_path, text, account="123456789012") == [
        f"{tmp_path / 'config.yaml'}:7: policy 'nightly': share.accounts[1]: 123456789012 is "
        "the account that owns the snapshots: AWS refuses to share a snapshot with its own "
        "account, so every run would fail to share it; remove it"
    ]


def test_findings_survive_a_file_gone_since_the_load(tmp_path: Path) -> None:
    path = _write(tmp_path, COPIERS.replace('["prod-*"]', '["prod-a"]'))
    config = load_config(path)
    path.unlink()
    (problem,) = locate(config, config_warnings(config))
    assert (problem.file, problem.line, problem.policy) == (str(path.absolute()), None, "extra")
    assert problem.field == "copy_automated"


SANDBOX_COPIERS = """\
state_url: sqlite:///{db}
aws:
  region: us-east-1
policies:
  - name: nightly
    select:
      clusters: ["prod-*"]
    copy_automated: true
    share:
      accounts: [ACCOUNTS]
    retention: {{keep_last: 3}}
  - name: extra
    select:
      clusters: ["*"]
      tags: {{team: bi}}
    copy_automated: true
"""


def test_validate_and_plan_warn_and_refuse_sharing_with_the_owner(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = sandbox
    box.write_config(SANDBOX_COPIERS.replace("ACCOUNTS", "'111122223333'"))
    box.cluster("prod-a", team="bi")
    box.cluster("prod-b")
    box.cluster("dev-a")
    cfg = str(box.config)
    extra_copies = (
        f"warning: {cfg}:16: policy 'extra': copy_automated: policy 'nightly' also copies the "
        "automated snapshots of"
    )
    unbounded = f"warning: {cfg}:12: policy 'extra': retention: no retention rule"

    plain = box.cli("validate")
    assert plain.returncode == 0, plain.stderr
    assert f"{extra_copies} any cluster matching both 'prod-*' and '*'" in plain.stderr
    assert unbounded in plain.stderr

    for command in (("validate", "--aws"), ("plan",)):
        r = box.cli(*command)
        assert r.returncode == 0, (command, r.stderr)
        assert f"{extra_copies} cluster 'prod-a': each policy" in r.stderr, command
        assert "validate --aws" not in r.stderr and "prod-b" not in r.stderr, command
        assert unbounded in r.stderr, command

    box.write_config(SANDBOX_COPIERS.replace("ACCOUNTS", f"'111122223333', '{ACCOUNT}'"))
    assert box.cli("validate").returncode == 0  # the account is known only from AWS
    refused = (
        f"{cfg}:10: policy 'nightly': share.accounts[1]: {ACCOUNT} is the account that owns "
        "the snapshots: AWS refuses to share"
    )
    # `plan` knows the account from the inventory (here: the snapshots' OwnerAccount).
    box.automated("prod-b", 1)
    r = box.cli("plan")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith(refused) and r.stdout == ""
    assert "Traceback" not in r.stderr
    # `validate --aws` knows it from DescribeClusters' ClusterNamespaceArn, which AWS reports
    # for every cluster and moto does not: the gateway is told it here.
    monkeypatch.setattr(RedshiftGateway, "account_id", lambda self: ACCOUNT)
    res = CliRunner().invoke(app, ["validate", "--aws"], env=box.env())
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith(refused) and "ok (" not in res.stdout


def test_many_copying_policies_are_compared_in_one_pass() -> None:
    """Above 200 copying policies the pairs are not all compared (quadratic): the same
    pattern in two policies is still found."""
    policies = [
        {"name": f"p{i}", "select": {"clusters": [f"c-{i}-*"]}, "copy_automated": True}
        for i in range(400)
    ]
    policies[399]["select"] = {"clusters": ["x", "c-7-*"]}
    policies[398]["select"] = {"clusters": ["c-9-*"], "tags": {"env": "a"}}
    policies[9]["select"] = {"clusters": ["c-9-*"], "tags": {"env": "b"}}
    config = Config.model_validate({"policies": policies})
    assert [str(p) for p in locate(config, copy_overlaps(config))] == [
        "<config>: policy 'p399': copy_automated: policy 'p7' also copies the automated "
        "snapshots of any cluster matching 'c-7-*': each policy makes its own copy of every "
        "one (`snapworker validate --aws` checks the real clusters)"
    ]


def test_formerly_names_are_checked_with_file_line_policy_and_field(tmp_path: Path) -> None:
    """A ``formerly`` name must be a valid policy name, no current policy's name, and
    claimed by one policy only (issue 18)."""
    text = (
        "policies:\n"
        "  - name: prod-daily\n"
        "    formerly: [prod-nightly, prod-weekly]\n"
        "  - name: prod-weekly\n"
        "    formerly:\n"
        "      - PROD-nightly\n"
        "      - 'bad name'\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    shown = [(p.line, p.policy, p.field, p.message) for p in info.value.problems]
    assert shown == [
        (
            7,
            "prod-weekly",
            "formerly[1]",
            "may hold only letters, digits and hyphens (found ' ') (got 'bad name')",
        )
    ]
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text.replace("      - 'bad name'\n", "")))
    shown = [(p.line, p.policy, p.field, p.message) for p in info.value.problems]
    assert shown == [
        (
            3,
            "prod-daily",
            "formerly[1]",
            "'prod-weekly' is the name of a current policy (policies[1], 'prod-weekly'): a "
            "former name must be one no policy has now",
        ),
        (
            6,
            "prod-weekly",
            "formerly[0]",
            "former name 'PROD-nightly' is already claimed by policies[0].formerly[0]: only "
            "one policy may own a former name's snapshots",
        ),
    ]
    ok = load_config(_write(tmp_path, "policies:\n  - name: b\n    formerly: [a]\n"))
    assert ok.policies[0].core.formerly == ("a",)
