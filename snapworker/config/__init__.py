"""Configuration: pydantic models, hardened YAML loading, and error messages an operator can act on.

Loading (:func:`load_config`) refuses a bad file with a :class:`ConfigError` that lists every
problem found, each naming the file, the line, the policy and the field::

    snapworker.yaml:14: policy 'prod-nightly': retention.keep_last: must be -1 or between 0 and
    100000 (got -5)

The file is treated as hostile input. Before any parsing it must be a regular file of at most
1 MiB of UTF-8 text without NUL bytes. The YAML is composed with PyYAML's safe loader, further
restricted: no aliases (so no "billion laughs"), no tags other than the plain core ones (so no
``!!python/object``), no duplicate keys (PyYAML would silently keep the last one), no merge
keys, no complex keys, at most 32 levels of nesting. Mapping keys are always read as strings
(``no:`` is the key ``"no"``, not ``False``), and YAML 1.1 timestamps stay strings.

The models are strict (``strict=True`` on top of ``extra="forbid", frozen=True``): a quoted
``"3"`` is not an integer and ``"true"`` is not a boolean, so a typo never changes meaning
silently. Durations (``keep_within``, ``unshare_after``) are written as strings (``2d``,
``1d12h``) and held as :class:`datetime.timedelta`. Cron schedules are held normalised: the
nicknames ``@daily`` and friends are expanded to their five fields.

State URL and relative paths: a relative SQLite path in ``state_url``
(``sqlite:///snapworker.db``) is resolved by SQLAlchemy against the process's current
directory, NOT against the directory of the configuration file. That is how every SQLAlchemy
tool (Alembic included) reads the same URL, so a URL means one database whoever opens it; a
service should run from its state directory or use an absolute path
(``sqlite:////var/lib/snapworker/state.db``). :attr:`Config.source_path` records where the
configuration was loaded from (for messages and ``status``); it is a private attribute, not
a model field, so it is never validated nor serialised (``model_dump``), though pydantic
compares it in ``==``.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import types
import typing
import zoneinfo
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from snapworker.core.durations import MAX_DURATION, parse_duration
from snapworker.core.ids import policy_name_problem
from snapworker.errors import UsageError

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_CONFIG",
    "MAX_CONFIG_BYTES",
    "SUPPORT_ALIAS",
    "AwsConfig",
    "Config",
    "ConfigError",
    "CreateSpec",
    "DaemonConfig",
    "HttpConfig",
    "Limits",
    "Policy",
    "Problem",
    "Retention",
    "RetryConfig",
    "Select",
    "ShareSpec",
    "VerifyCheck",
    "VerifyConnect",
    "VerifySpec",
    "load_config",
    "resolve_config_path",
]

ENV_CONFIG = "SNAPWORKER_CONFIG"
DEFAULT_CONFIG_FILE = "snapworker.yaml"
MAX_CONFIG_BYTES = 1024 * 1024
MAX_NESTING = 32
_MAX_NUMBER_TEXT = 100
SUPPORT_ALIAS = "amazon-redshift-support"
"""The account alias AWS support restores through (reported by AWS as ``AccountAlias``)."""


# --------------------------------------------------------------------------------------------
# Value checks (each returns the value, possibly normalised, or raises ValueError)
# --------------------------------------------------------------------------------------------


def _show(value: object, limit: int = 60) -> str:
    """A short, safe rendering of an offending value for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _in_range(lo: float, hi: float) -> AfterValidator:
    def check(value: float) -> float:
        if not lo <= value <= hi:  # also refuses NaN
            raise ValueError(f"must be between {lo} and {hi} (got {_show(value)})")
        return value

    return AfterValidator(check)


def _keep_count(value: int) -> int:
    if value == -1 or 0 <= value <= 100_000:
        return value
    raise ValueError(f"must be -1 or between 0 and 100000 (got {_show(value)})")


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _duration(value: object) -> object:
    """BeforeValidator: a duration string becomes a timedelta; a timedelta is range-checked."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        if not timedelta(0) < value <= MAX_DURATION:
            raise ValueError(f"must be longer than zero and at most 100 years (got {value})")
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a duration like '2d' or '1d12h' (got {_show(value)})")
    return parse_duration(value)


_REGION_RE = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]+")


def _region(value: str) -> str:
    if _REGION_RE.fullmatch(value) is None:
        raise ValueError(f"must be an AWS region name like 'us-east-1' (got {_show(value)})")
    return value


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise ValueError(f"must be an http:// or https:// URL (got {_show(value)})")
    return value


_ACCOUNT_RE = re.compile(r"[0-9]{12}")


def _account_input(value: object) -> object:
    """BeforeValidator: explain the classic unquoted-number mistake."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            "write account ids as quoted strings ('111122223333'): YAML reads an unquoted "
            f"number as an integer and drops leading zeros (got {_show(value)})"
        )
    return value


def _account(value: str) -> str:
    if value == SUPPORT_ALIAS or _ACCOUNT_RE.fullmatch(value):
        return value
    stripped = value.strip()
    if stripped != value and (stripped == SUPPORT_ALIAS or _ACCOUNT_RE.fullmatch(stripped)):
        raise ValueError(f"must not have leading or trailing spaces (got {_show(value)})")
    if value.isascii() and value.isdigit():
        raise ValueError(
            f"an AWS account id has exactly 12 digits (got {len(value)} digits: {_show(value)})"
        )
    raise ValueError(f"must be a 12-digit AWS account id or '{SUPPORT_ALIAS}' (got {_show(value)})")


def _cluster_pattern(value: str) -> str:
    if not value:
        raise ValueError("must not be empty (use '*' to select every cluster)")
    if any(c.isspace() for c in value):
        raise ValueError(f"must not contain spaces (got {_show(value)})")
    return value


def _select_tag_key(value: str) -> str:
    if not 1 <= len(value) <= 128:
        raise ValueError(f"a tag key has 1 to 128 characters (got {len(value)})")
    return value


def _select_tag_value(value: str) -> str:
    if len(value) > 256:
        raise ValueError(f"a tag value has at most 256 characters (got {len(value)})")
    return value


_TAG_KEY_RE = re.compile(r"[\w\s.:/=+\-@]+")


def _hold_tag(value: str) -> str:
    if not 1 <= len(value) <= 128:
        raise ValueError(f"an AWS tag key has 1 to 128 characters (got {len(value)})")
    if value.lower().startswith("aws:"):
        raise ValueError(f"must not start with 'aws:', a prefix AWS reserves (got {_show(value)})")
    if _TAG_KEY_RE.fullmatch(value) is None:
        raise ValueError(
            "an AWS tag key holds letters, digits, spaces and _ . : / = + - @ only "
            f"(got {_show(value)})"
        )
    return value


_CRON_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_CRON_FIELD_RES = (
    re.compile(r"[0-9*,/-]+"),
    re.compile(r"[0-9*,/-]+"),
    re.compile(r"[0-9*,/-]+"),
    re.compile(r"(?:[0-9*,/-]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)+", re.I),
    re.compile(r"(?:[0-9*,/-]|sun|mon|tue|wed|thu|fri|sat)+", re.I),
)
_CRON_FORM = "minute hour day-of-month month day-of-week"


def _cron(value: str) -> str:
    """A standard 5-field cron expression, returned with single spaces (nicknames expanded)."""
    text = value.strip()
    if text.startswith("@"):
        expanded = _CRON_NICKNAMES.get(text.lower())
        if expanded is None:
            known = ", ".join(sorted(_CRON_NICKNAMES))
            raise ValueError(f"unknown cron nickname {_show(value)} (known: {known})")
        return expanded
    fields = text.split()
    if len(fields) in (6, 7):
        raise ValueError(
            f"has {len(fields)} fields; only standard 5-field cron ({_CRON_FORM}) is "
            f"supported, without seconds or years (got {_show(value)})"
        )
    if len(fields) != 5:
        raise ValueError(f"must be a 5-field cron expression ({_CRON_FORM}) (got {_show(value)})")
    for name, field, pattern in zip(_CRON_FIELDS, fields, _CRON_FIELD_RES, strict=True):
        if pattern.fullmatch(field) is None:
            raise ValueError(
                f"the {name} field {field!r} is not standard cron (numbers, '*', ',', '-', "
                f"'/'{', and names' if name in ('month', 'day-of-week') else ''}) "
                f"(got {_show(value)})"
            )
    expression = " ".join(fields)
    from croniter import croniter  # here, not at import: a config without schedules skips it

    try:
        iterator = croniter(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except Exception as exc:  # croniter raises assorted errors on hostile input
        reason = str(exc).replace(f"[{expression}] ", "") or type(exc).__name__
        raise ValueError(f"is not a valid cron expression: {reason} (got {_show(value)})") from None
    try:
        iterator.get_next(datetime)
    except Exception:
        raise ValueError(
            f"never fires (a date that does not exist, like 30 February) (got {_show(value)})"
        ) from None
    return expression


_HOST_DEPENDENT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def _timezone(value: str) -> str:
    if value in _HOST_DEPENDENT_ZONES:
        raise ValueError(f"must be an IANA time zone name, not {value!r}")
    try:
        zoneinfo.ZoneInfo(value)
    except Exception:  # ZoneInfoNotFoundError, ValueError on odd keys, OSError on long ones
        known = zoneinfo.available_timezones()
        by_case = {name.lower(): name for name in known}
        guess = by_case.get(value.lower()) or next(
            iter(difflib.get_close_matches(value, known, n=1)), None
        )
        hint = f"; did you mean {guess!r}?" if guess else " like 'UTC' or 'Europe/Paris'"
        raise ValueError(f"unknown time zone {_show(value)}: use an IANA name{hint}") from None
    return value


def _state_url(value: str) -> str:
    # A plain SQLite URL runs on the stdlib driver: no need to import SQLAlchemy (heavy) to
    # check it. Any other URL is checked by SQLAlchemy, imported here only.
    from snapworker.adapters.store.urls import parse_sqlite_url

    if parse_sqlite_url(value) is not None:
        return value
    from sqlalchemy.engine import make_url

    try:
        url = make_url(value)
    except Exception:
        # The value is not echoed: it may hold a password.
        raise ValueError(
            "is not a SQLAlchemy database URL (like 'sqlite:///snapworker.db' or "
            "'postgresql+psycopg://user@host/db')"
        ) from None
    try:
        url.get_dialect()
    except Exception:
        raise ValueError(
            f"names a database backend SQLAlchemy does not know ({url.drivername!r})"
        ) from None
    return value


def _duplicates(
    items: Iterable[tuple[int, str]], noun: str, where: str, note: str = ""
) -> list[tuple[int, str]]:
    """(index, message) for each item repeating an earlier one, compared case-insensitively."""
    first: dict[str, tuple[int, str]] = {}
    found: list[tuple[int, str]] = []
    for index, key in items:
        folded = key.casefold()
        if folded not in first:
            first[folded] = (index, key)
            continue
        earlier_index, earlier = first[folded]
        detail = f"already at {where}[{earlier_index}]"
        if earlier != key:
            detail += f" as {earlier!r}; compared case-insensitively{note}"
        found.append((index, f"duplicate {noun} {key!r} ({detail})"))
    return found


def _policy_name_duplicates(names: Iterable[tuple[int, str]]) -> list[Any]:
    found = _duplicates(names, "policy name", "policies", ", as AWS lowercases snapshot ids")
    return [[[index, "name"], message] for index, message in found]


def _raise_duplicates(items: list[Any]) -> NoReturn:
    summary = "; ".join(message for _, message in items)
    raise PydanticCustomError("duplicate", "{summary}", {"summary": summary, "items": items})


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AwsConfig(_Model):
    """How to reach AWS. Unset values fall back to the standard AWS chain."""

    region: Annotated[str, AfterValidator(_region)] | None = None
    profile: Annotated[str, AfterValidator(_non_blank)] | None = None
    endpoint_url: Annotated[str, AfterValidator(_http_url)] | None = None
    max_attempts: Annotated[int, _in_range(1, 10)] = 3
    """botocore's total attempts per API call (its own retry layer)."""
    connect_timeout_seconds: Annotated[float, _in_range(0.1, 300)] = 10.0
    """botocore's connect timeout per HTTP attempt."""
    read_timeout_seconds: Annotated[float, _in_range(0.1, 900)] = 60.0
    """botocore's read timeout per HTTP attempt: a call unanswered this long is retried."""
    max_concurrency: Annotated[int, _in_range(1, 32)] = 4
    """Clusters whose actions run at the same time (each cluster's actions stay in order)."""
    max_calls_per_second: Annotated[float, _in_range(0.1, 100)] = 5.0
    """Budget of mutating calls per second, shared by all threads; halved on throttling,
    recovered additively (see ``snapworker.adapters.aws.ratelimit``)."""


class RetryConfig(_Model):
    """tenacity's retry of one action (above botocore's own attempts)."""

    attempts: Annotated[int, _in_range(1, 20)] = 5
    wait_initial_seconds: Annotated[float, _in_range(0, 60)] = 1.0
    wait_max_seconds: Annotated[float, _in_range(0, 600)] = 30.0

    @model_validator(mode="after")
    def _waits_ordered(self) -> RetryConfig:
        if self.wait_initial_seconds > self.wait_max_seconds:
            raise ValueError(
                f"wait_initial_seconds ({self.wait_initial_seconds}) must not exceed "
                f"wait_max_seconds ({self.wait_max_seconds})"
            )
        return self


class Select(_Model):
    """Which clusters a policy takes new snapshots of."""

    clusters: list[Annotated[str, AfterValidator(_cluster_pattern)]] = Field(
        default_factory=lambda: ["*"]
    )
    """fnmatch glob patterns over ClusterIdentifier; ``[]`` selects none (retention still
    applies to what the policy already owns)."""
    tags: dict[
        Annotated[str, AfterValidator(_select_tag_key)],
        Annotated[str, AfterValidator(_select_tag_value)],
    ] = Field(default_factory=dict)
    """All must match the cluster's tags."""


class CreateSpec(_Model):
    """Take a manual snapshot of each selected cluster on a schedule."""

    schedule: Annotated[str, AfterValidator(_cron)]
    """Standard 5-field cron, evaluated in ``timezone``."""
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"


class ShareSpec(_Model):
    """Which accounts the policy's snapshots are shared with."""

    accounts: list[Annotated[str, BeforeValidator(_account_input), AfterValidator(_account)]] = (
        Field(default_factory=list)
    )
    unshare_after: Annotated[timedelta | None, BeforeValidator(_duration)] = None
    revoke_unlisted: bool = False

    @field_validator("accounts")
    @classmethod
    def _accounts_unique(cls, accounts: list[str]) -> list[str]:
        found = _duplicates(enumerate(accounts), "account", "accounts")
        if found:
            _raise_duplicates([[[index], message] for index, message in found])
        return accounts


class Retention(_Model):
    """What to keep; a snapshot is kept when any rule keeps it. No rule: nothing expires."""

    max_age_days: Annotated[int, _in_range(1, 36500)] | None = None
    keep_last: Annotated[int, AfterValidator(_keep_count)] | None = None
    keep_hourly: Annotated[int, AfterValidator(_keep_count)] | None = None
    keep_daily: Annotated[int, AfterValidator(_keep_count)] | None = None
    keep_weekly: Annotated[int, AfterValidator(_keep_count)] | None = None
    keep_monthly: Annotated[int, AfterValidator(_keep_count)] | None = None
    keep_yearly: Annotated[int, AfterValidator(_keep_count)] | None = None
    keep_within: Annotated[timedelta | None, BeforeValidator(_duration)] = None
    fail_safe_days: Annotated[int, _in_range(1, 3653)] | None = None
    """Optional, off by default: the ManualSnapshotRetentionPeriod (days) set on every
    snapshot the policy creates or copies, so that AWS itself deletes them should the worker
    be gone for good. Not a retention rule: it keeps nothing, and AWS deletes on its own
    clock whatever the rules above (or a hold) say; ``plan`` warns when it is shorter than
    what the rules keep."""

    @property
    def has_rules(self) -> bool:
        """Whether any rule is set (with none, nothing expires); ``fail_safe_days`` is not one."""
        return any(
            getattr(self, name) is not None
            for name in type(self).model_fields
            if name != "fail_safe_days"
        )


class Limits(_Model):
    max_deletes_per_run: Annotated[int, _in_range(0, 10_000)] = 20
    """Blast radius: deletions one policy may make in one run."""


class HttpConfig(_Model):
    """The daemon's health and metrics endpoint."""

    host: Annotated[str, AfterValidator(_non_blank)] = "127.0.0.1"
    port: Annotated[int, _in_range(1, 65535)]


class DaemonConfig(_Model):
    reconcile_interval_seconds: Annotated[int, _in_range(10, 86400)] = 300
    poll_creating_seconds: Annotated[int, _in_range(1, 30)] = 30
    http: HttpConfig | None = None
    sqs_queue_url: Annotated[str, AfterValidator(_http_url)] | None = None
    delete_bad_messages: bool = True
    history_days: Annotated[int, _in_range(1, 3650)] = 90


# Restore verification (``verify:``). GetClusterCredentials' documented constraints, checked
# here so that a bad value is refused by `validate`, not by AWS at 5 a.m. on a Sunday.
# Source: the Redshift API reference for GetClusterCredentials (DbUser, DbName, DbGroups,
# DurationSeconds) and the Database Developer Guide's "Reserved words" (r_pg_keywords).

REDSHIFT_RESERVED_WORDS = frozenset(
    """
    AES128 AES256 ALL ALLOWOVERWRITE ANALYSE ANALYZE AND ANY ARRAY AS ASC AUTHORIZATION AZ64
    BACKUP BETWEEN BINARY BLANKSASNULL BOTH BYTEDICT BZIP2 CASE CAST CHECK COLLATE COLUMN
    CONSTRAINT CREATE CREDENTIALS CROSS CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP
    CURRENT_USER CURRENT_USER_ID DEFAULT DEFERRABLE DEFLATE DEFRAG DELTA DELTA32K DESC DISABLE
    DISTINCT DO ELSE EMPTYASNULL ENABLE ENCODE ENCRYPT ENCRYPTION END EXCEPT EXPLICIT FALSE FOR
    FOREIGN FREEZE FROM FULL GLOBALDICT256 GLOBALDICT64K GRANT GROUP GZIP HAVING IDENTITY
    IGNORE ILIKE IN INITIALLY INNER INTERSECT INTERVAL INTO IS ISNULL JOIN LEADING LEFT LIKE
    LIMIT LOCALTIME LOCALTIMESTAMP LUN LUNS LZO LZOP MINUS MOSTLY16 MOSTLY32 MOSTLY8 NATURAL NEW
    NOT NOTNULL NULL NULLS OFF OFFLINE OFFSET OID OLD ON ONLY OPEN OR ORDER OUTER OVERLAPS
    PARALLEL PARTITION PERCENT PERMISSIONS PIVOT PLACING PRIMARY RAW READRATIO RECOVER
    REFERENCES REJECTLOG RESORT RESPECT RESTORE RIGHT SELECT SESSION_USER SIMILAR SNAPSHOT SOME
    SYSDATE SYSTEM TABLE TAG TDES TEXT255 TEXT32K THEN TIMESTAMP TO TOP TRAILING TRUE
    TRUNCATECOLUMNS UNION UNIQUE UNNEST UNPIVOT USER USING VERBOSE WALLET WHEN WHERE WITH
    WITHOUT
    """.split()  # noqa: SIM905 - the documented list, as documented
)
"""Amazon Redshift's reserved words; DbUser, DbName and DbGroups must not be one of them."""

DB_IDENTIFIER_MAX_LENGTH = 64
"""DbUser, DbName, each of DbGroups: "1 to 64 alphanumeric characters or hyphens"."""

_DB_USER_CHARS = re.compile(r"[A-Za-z0-9_+.@-]+")
_DB_GROUP_CHARS = re.compile(r"[a-z0-9_+.@-]+")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
"""libpq's sslmode values."""


def db_identifier_problem(value: str, what: str, *, lowercase_only: bool = False) -> str | None:
    """Why ``value`` is not a valid DbUser/DbName (or, ``lowercase_only``, DbGroups entry)."""
    if not 1 <= len(value) <= DB_IDENTIFIER_MAX_LENGTH:
        return f"a {what} has 1 to {DB_IDENTIFIER_MAX_LENGTH} characters (got {len(value)})"
    if ":" in value or "/" in value:
        return f"a {what} must not contain a colon or a slash (got {_show(value)})"
    chars = _DB_GROUP_CHARS if lowercase_only else _DB_USER_CHARS
    if chars.fullmatch(value) is None:
        allowed = "lowercase letters" if lowercase_only else "letters"
        return f"a {what} holds {allowed}, digits and _ + . @ - only (got {_show(value)})"
    if not value[0].isalpha():
        return f"a {what} must start with a letter (got {_show(value)})"
    if value.upper() in REDSHIFT_RESERVED_WORDS:
        return f"{_show(value)} is a Redshift reserved word and cannot be a {what}"
    return None


def _db_check(what: str, *, lowercase_only: bool = False) -> AfterValidator:
    def check(value: str) -> str:
        problem = db_identifier_problem(value, what, lowercase_only=lowercase_only)
        if problem is not None:
            raise ValueError(problem)
        if what == "database user" and value.upper() == "PUBLIC":
            raise ValueError("the database user cannot be PUBLIC")
        return value

    return AfterValidator(check)


_CHECK_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")


def _check_name(value: str) -> str:
    if _CHECK_NAME_RE.fullmatch(value) is None:
        raise ValueError(
            "a check name has 1 to 63 letters, digits, hyphens and underscores, first a letter "
            f"(got {_show(value)})"
        )
    return value


def _host(value: str) -> str:
    if not value or any(c.isspace() for c in value) or "/" in value:
        raise ValueError(f"must be a host name or IP address (got {_show(value)})")
    return value


class VerifyConnect(_Model):
    """How a drill reaches the restored database: GetClusterCredentials, then libpq."""

    db_user: Annotated[str, _db_check("database user")]
    db_name: Annotated[str, _db_check("database name")] = "dev"
    """Passed to GetClusterCredentials (DbName) and used to connect."""
    db_groups: list[Annotated[str, _db_check("database group", lowercase_only=True)]] = Field(
        default_factory=list
    )
    duration_seconds: Annotated[int, _in_range(900, 3600)] = 900
    auto_create: bool = False
    host: Annotated[str, AfterValidator(_host)] | None = None
    """Override the restored cluster's endpoint address (a tunnel, a test server)."""
    port: Annotated[int, _in_range(1, 65535)] | None = None
    sslmode: typing.Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = (
        "require"
    )


Scalar = bool | int | float | str | None


class CheckExpect(_Model):
    """Exactly one of: ``min`` (the first value of the first row is a number >= N),
    ``equals`` (it equals VALUE), ``same_as_snapshot: true`` (it equals the figure of the
    same name recorded on the live cluster right before the snapshot was taken)."""

    min: int | float | None = None
    equals: Scalar = None
    same_as_snapshot: bool | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CheckExpect:
        given = [k for k in ("min", "equals", "same_as_snapshot") if k in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of min, equals, same_as_snapshot "
                f"(got {', '.join(given) or 'none'})"
            )
        if self.same_as_snapshot is False:
            raise ValueError("same_as_snapshot can only be true (leave it out otherwise)")
        return self

    @property
    def kind(self) -> str:
        if "min" in self.model_fields_set:
            return "min"
        if "equals" in self.model_fields_set:
            return "equals"
        return "same_as_snapshot"


class VerifyCheck(_Model):
    """One SQL query and what its first value must be."""

    name: Annotated[str, AfterValidator(_check_name)]
    sql: Annotated[str, AfterValidator(_non_blank)]
    expect: CheckExpect


class SnapshotFigure(_Model):
    """A figure (e.g. a row count) read on the live cluster right before a scheduled snapshot."""

    name: Annotated[str, AfterValidator(_check_name)]
    sql: Annotated[str, AfterValidator(_non_blank)]


class VerifySpec(_Model):
    """Restore drill of the newest owned snapshot per cluster, on a schedule."""

    schedule: Annotated[str, AfterValidator(_cron)]
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    wait_minutes: Annotated[int, _in_range(1, 1440)] = 60
    """Bound on the restore: the drill fails if the cluster is not available by then."""
    poll_seconds: Annotated[float, _in_range(0.1, 600)] = 30.0
    """How often DescribeClusters is asked while the restore runs."""
    connect: VerifyConnect
    checks: list[VerifyCheck] = Field(min_length=1)
    record_before_snapshot: list[SnapshotFigure] = Field(default_factory=list)
    """Figures read on the live cluster (same credentials path) right before each scheduled
    CreateClusterSnapshot, stored with the snapshot; checks with ``same_as_snapshot`` compare."""

    @model_validator(mode="after")
    def _names(self) -> VerifySpec:
        for what, items in (("check", self.checks), ("figure", self.record_before_snapshot)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"duplicate {what} name {item.name!r}")
                seen.add(item.name)
        figures = {f.name for f in self.record_before_snapshot}
        for check in self.checks:
            if check.expect.kind == "same_as_snapshot" and check.name not in figures:
                raise ValueError(
                    f"check {check.name!r} compares with the snapshot's figures, but "
                    f"record_before_snapshot has no figure named {check.name!r}"
                )
        return self


class Policy(_Model):
    """One policy: which clusters, what to make, whom to share with, what to keep."""

    name: str
    select: Select = Select()
    create: CreateSpec | None = None
    copy_automated: bool = False
    share: ShareSpec = ShareSpec()
    retention: Retention = Retention()
    limits: Limits = Limits()
    hold_tag: Annotated[str, AfterValidator(_hold_tag)] = "snapworker:hold"
    verify: VerifySpec | None = None

    @model_validator(mode="after")
    def _figures_need_create(self) -> Policy:
        if self.verify is not None and self.verify.record_before_snapshot and self.create is None:
            raise ValueError(
                "verify.record_before_snapshot reads figures before each scheduled snapshot: "
                "it needs create.schedule"
            )
        return self

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        problem = policy_name_problem(name)
        if problem is not None:
            raise ValueError(problem if "(got" in problem else f"{problem} (got {_show(name)})")
        return name

    @property
    def timezone(self) -> str:
        """The policy's time zone: ``create.timezone``, else UTC."""
        return self.create.timezone if self.create is not None else "UTC"


class Config(_Model):
    """The whole configuration. See the module docstring for relative SQLite paths."""

    state_url: Annotated[str, AfterValidator(_state_url)] = "sqlite:///snapworker.db"
    aws: AwsConfig = AwsConfig()
    retry: RetryConfig = RetryConfig()
    daemon: DaemonConfig = DaemonConfig()
    policies: list[Policy]

    _source_path: Path | None = PrivateAttr(default=None)

    @field_validator("policies")
    @classmethod
    def _policies_valid(cls, policies: list[Policy]) -> list[Policy]:
        if not policies:
            raise ValueError("must define at least one policy")
        found = _policy_name_duplicates((i, p.name) for i, p in enumerate(policies))
        if found:
            _raise_duplicates(found)
        return policies

    @property
    def source_path(self) -> Path | None:
        """The file this configuration was loaded from (absolute), or None if built in code."""
        return self._source_path

    def policy(self, name: str) -> Policy:
        """The policy called ``name`` (exact, else case-insensitive); KeyError if none."""
        for policy in self.policies:
            if policy.name == name:
                return policy
        for policy in self.policies:
            if policy.name.casefold() == name.casefold():
                return policy
        known = ", ".join(repr(p.name) for p in self.policies)
        raise KeyError(f"no policy named {name!r} (known: {known})")


# --------------------------------------------------------------------------------------------
# Problems and errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration file."""

    file: str
    line: int | None
    policy: str | None
    field: str
    message: str

    def __str__(self) -> str:
        parts = [self.file if self.line is None else f"{self.file}:{self.line}"]
        if self.policy is not None:
            parts.append(f"policy {self.policy!r}")
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(UsageError):
    """A configuration that cannot be used; ``problems`` lists everything found wrong."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """The configuration file to use: ``explicit``, else ``$SNAPWORKER_CONFIG``, else
    ``snapworker.yaml`` (in the current directory)."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    from_env = os.environ.get(ENV_CONFIG, "")
    if from_env:
        return Path(from_env).expanduser()
    return Path(DEFAULT_CONFIG_FILE)


# --------------------------------------------------------------------------------------------
# Reading and parsing
# --------------------------------------------------------------------------------------------


def _fail(file: str, message: str, line: int | None = None) -> NoReturn:
    raise ConfigError([Problem(file, line, None, "", message)])


def _read_text(path: Path, file: str) -> str:
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        _fail(file, "no such file")
    except OSError as exc:
        _fail(file, f"cannot read: {exc.strerror or exc}")
    if stat.S_ISDIR(info.st_mode):
        _fail(file, "is a directory, not a configuration file")
    if not stat.S_ISREG(info.st_mode):
        _fail(file, "is not a regular file")
    too_large = f"is too large: the limit is 1 MiB ({MAX_CONFIG_BYTES} bytes)"
    if info.st_size > MAX_CONFIG_BYTES:
        _fail(file, f"{too_large}, this file has {info.st_size} bytes")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        _fail(file, f"cannot read: {exc.strerror or exc}")
    if len(raw) > MAX_CONFIG_BYTES:
        _fail(file, too_large)
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        _fail(file, "contains a NUL byte: not a text file (binary? UTF-16?)", line)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        _fail(file, f"is not UTF-8 text (byte 0x{raw[exc.start]:02x})", line)
    return text.removeprefix("\ufeff")


class _Refused(yaml.MarkedYAMLError):
    """A YAML construct this loader refuses (with the mark of where it is)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map"))


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases, exotic tags, duplicate/merge/complex keys or deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                f"YAML aliases are not allowed (*{event.anchor}); write the value out in full",
                event.start_mark,
            )
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and tag not in _ALLOWED_TAGS:
            shown = tag.replace(_CORE, "!!") if isinstance(tag, str) else tag
            raise _Refused(f"YAML tag {shown!r} is not allowed", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _Refused(f"nested more than {MAX_NESTING} levels deep", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: dict[Any, yaml.Node]) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[str, int] = {}
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise _Refused("mapping keys must be plain strings", key.start_mark)
            if key.tag == _CORE + "merge":
                raise _Refused("YAML merge keys (<<) are not allowed", key.start_mark)
            if key.value in seen:
                raise _Refused(
                    f"duplicate key {key.value!r} (first at line {seen[key.value]})",
                    key.start_mark,
                )
            seen[key.value] = key.start_mark.line + 1
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, OverflowError, TypeError, ArithmeticError) as exc:
            raise _Refused(f"invalid value: {exc}", node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        # Keys are the scalar's text: `no:` is the key "no", `1:` the key "1".
        return {key.value: self.construct_object(value, deep=deep) for key, value in node.value}

    def _construct_as_text(self, node: yaml.ScalarNode) -> str:
        return self.construct_scalar(node)

    def _construct_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > _MAX_NUMBER_TEXT:  # int() of a huge string is slow, then refused
            raise _Refused(f"number too long ({len(node.value)} characters)", node.start_mark)
        return int(self.construct_yaml_int(node))


# YAML 1.1 timestamps (2026-01-01) and the "=" value indicator stay plain strings.
_StrictLoader.add_constructor(_CORE + "timestamp", _StrictLoader._construct_as_text)
_StrictLoader.add_constructor(_CORE + "value", _StrictLoader._construct_as_text)
_StrictLoader.add_constructor(_CORE + "int", _StrictLoader._construct_int)


def _parse_yaml(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        mark = exc.problem_mark
        _fail(file, str(exc.problem), mark.line + 1 if mark is not None else None)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = str(exc.problem or exc.context or "cannot be parsed")
        if exc.context and exc.problem and exc.problem.startswith("but "):
            message = f"{exc.context} {exc.problem}"
        elif exc.context and exc.problem:
            where = ""
            if exc.context_mark is not None and (
                mark is None or exc.context_mark.line != mark.line
            ):
                where = f" at line {exc.context_mark.line + 1}"
            message = f"{message} ({exc.context}{where})"
        if "'\\t'" in message:
            message += "; indent with spaces, not tabs"
        elif "<block" in message:
            message += "; check the indentation"
        _fail(file, f"invalid YAML: {message}", mark.line + 1 if mark is not None else None)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        _fail(file, f"invalid YAML: control character {shown} is not allowed", line)
    except yaml.YAMLError as exc:
        _fail(file, f"invalid YAML: {exc}")
    except RecursionError:
        _fail(file, "invalid YAML: nested too deeply")
    finally:
        if loader is not None:
            loader.dispose()
    return node, data


# --------------------------------------------------------------------------------------------
# Mapping validation errors back to the file
# --------------------------------------------------------------------------------------------

_TYPE_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "timedelta_type": "must be a duration like '2d'",
}


def _unwrap(annotation: Any) -> Any:
    """The model/list/dict type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that the error location ``loc`` points inside, if any."""
    current: Any = Config
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        elif origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict and isinstance(part, str):
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unknown_key_message(loc: Sequence[int | str]) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown key {key!r}"
    allowed = list(model.model_fields)
    guess = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if guess:
        return f"unknown key {key!r} (did you mean {guess[0]!r}?)"
    return f"unknown key {key!r} (allowed: {', '.join(allowed)})"


def _message(error: Any) -> str:
    kind = error["type"]
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden" and loc:
        return _unknown_key_message(loc)
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[kind]} (got {_show(error.get('input'))})"
    return str(error["msg"])


class _Locator:
    """Finds the YAML line of an error location (mapping lookups indexed once, not rescanned)."""

    def __init__(self, root: yaml.Node) -> None:
        self.root = root
        self._keys: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = {}

    def _entries(self, node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        entries = self._keys.get(id(node))
        if entries is None:
            entries = {key.value: (key, value) for key, value in node.value}
            self._keys[id(node)] = entries
        return entries

    def line(self, loc: Sequence[int | str], at_key: bool) -> int:
        """1-based line of the node at ``loc`` (its key's line when ``at_key``); when the path
        does not exist (a missing key), the line of the deepest node that does."""
        node = self.root
        key_node: yaml.Node | None = None
        for part in loc:
            if part == "[key]" and key_node is not None:
                node, key_node = key_node, None
                break
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                entry = self._entries(node).get(part)
                if entry is None:
                    break
                key_node, node = entry
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                node, key_node = node.value[part], None
            else:
                break
        else:
            if at_key and key_node is not None:
                return key_node.start_mark.line + 1
        return node.start_mark.line + 1


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _dotted(loc: Sequence[int | str]) -> str:
    """``policies[0].select.tags['a.b']``: indexes in brackets, odd keys quoted."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue  # an error about a mapping's key: the message says so
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part) is None:
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else part
    return out


def _problem(
    file: str, where: _Locator, data: Any, loc: tuple[int | str, ...], message: str, at_key: bool
) -> Problem:
    line = where.line(loc, at_key)
    if len(loc) >= 2 and loc[0] == "policies" and isinstance(loc[1], int):
        name = _raw_policy_name(data, loc[1])
        rest = loc[2:]
        if name is not None:
            return Problem(file, line, name, _dotted(rest), message)
        return Problem(file, line, None, _dotted(loc), message)
    return Problem(file, line, None, _dotted(loc), message)


def _raw_policy_name(data: Any, index: int) -> str | None:
    policies = data.get("policies") if isinstance(data, dict) else None
    if isinstance(policies, list) and 0 <= index < len(policies):
        entry = policies[index]
        if isinstance(entry, dict):
            name = entry.get("name")
            if isinstance(name, str) and name.strip():
                return name
    return None


def _problems(exc: ValidationError, root: yaml.Node, data: Any, file: str) -> list[Problem]:
    where = _Locator(root)
    problems: list[Problem] = []
    duplicate_names_reported = False
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] == "duplicate":
            duplicate_names_reported |= loc == ("policies",)
            for suffix, message in error["ctx"]["items"]:
                problems.append(_problem(file, where, data, loc + tuple(suffix), message, False))
            continue
        at_key = error["type"] == "extra_forbidden"
        problems.append(_problem(file, where, data, loc, _message(error), at_key))
    if not duplicate_names_reported:
        # Pydantic checks names only once every policy is valid: report them now anyway.
        policies = data.get("policies")
        if isinstance(policies, list):
            names = [
                (i, p["name"])
                for i, p in enumerate(policies)
                if isinstance(p, dict) and isinstance(p.get("name"), str)
            ]
            for suffix, message in _policy_name_duplicates(names):
                problems.append(_problem(file, where, data, ("policies", *suffix), message, False))
    problems.sort(key=lambda p: p.line or 0)
    return problems


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        return f"the scalar {_show(node.value)}"
    return "something else"


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate the configuration at ``path``.

    Raises ConfigError listing every problem found; never another exception for a bad file.
    """
    file = str(path)
    source = Path(path)
    text = _read_text(source, file)
    root, data = _parse_yaml(text, file)
    if root is None:
        _fail(file, "is empty: expected a mapping with at least a 'policies' list")
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        _fail(
            file,
            "the top level must be a mapping (state_url, aws, retry, daemon, policies), "
            f"not {_kind(root)}",
            root.start_mark.line + 1,
        )
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, root, data, file)) from None
    config._source_path = source.absolute()
    return config
