"""Value checks for the configuration models: each takes a value and returns it (possibly
normalised, like a cron nickname expanded) or raises ValueError with a message an operator can
act on. Pydantic calls them (``AfterValidator``/``BeforeValidator`` in :mod:`.models`); their
messages reach the operator through :mod:`.problems`, which adds the file, line, policy and
field.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import urlsplit

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from snapworker.config.urls import parse_sqlite_url
from snapworker.core.accounts import SUPPORT_ALIAS as SUPPORT_ALIAS
from snapworker.core.durations import MAX_DURATION, parse_duration
from snapworker.core.ids import policy_name_problem


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
_CRON_RANGES = {
    "minute": (0, 59),
    "hour": (0, 23),
    "day-of-month": (1, 31),
    "month": (1, 12),
    "day-of-week": (0, 7),  # 0 and 7 are both Sunday
}


def _cron_field_problem(name: str, field: str, lo: int, hi: int) -> str | None:
    """What is out of range in one cron field, in the operator's words (``minute 61 out of
    range 0-59``), rather than croniter's ("is not acceptable, out of range", no field)."""
    for item in field.split(","):
        span, slash, step = item.partition("/")
        if slash and step and set(step) == {"0"}:
            return f"{name} step 0 in {item!r}: a step is at least 1"
        if slash and step.isdigit() and len(step.lstrip("0")) > 4:
            return f"{name} step {step[:9]}... is too large"
        for bound in span.split("-") if span != "*" else ():
            if bound.isdigit() and (len(bound.lstrip("0")) > 4 or not lo <= int(bound) <= hi):
                shown = str(int(bound)) if len(bound) <= 12 else bound[:9] + "..."
                return f"{name} {shown} out of range {lo}-{hi}"
    return None


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
        problem = _cron_field_problem(name, field, *_CRON_RANGES[name])
        if problem is not None:
            raise ValueError(f"{problem} (got {_show(value)})")
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
    # A plain SQLite URL is read without SQLAlchemy (heavy: `validate` never loads the database
    # layer). Any other URL is checked by SQLAlchemy, imported here only, for start-up time.
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


def _policy_name(name: str) -> str:
    """A valid policy name (a policy's ``name``, or one of its ``formerly``)."""
    problem = policy_name_problem(name)
    if problem is not None:
        raise ValueError(problem if "(got" in problem else f"{problem} (got {_show(name)})")
    return name


def _former_name_conflicts(policies: Sequence[tuple[str, Sequence[str]]]) -> list[Any]:
    """``formerly`` names that are a current policy's name, or that two policies (or one
    twice) claim; compared case-insensitively, as AWS lowercases snapshot ids."""
    current = {name.casefold(): (i, name) for i, (name, _) in enumerate(policies)}
    claimed: dict[str, tuple[int, int]] = {}
    found: list[Any] = []
    for i, (_, formerly) in enumerate(policies):
        for j, old in enumerate(formerly):
            key = old.casefold()
            if key in current:
                k, name = current[key]
                found.append(
                    [
                        [i, "formerly", j],
                        f"{old!r} is the name of a current policy (policies[{k}], {name!r}): "
                        "a former name must be one no policy has now",
                    ]
                )
            elif key in claimed:
                k, m = claimed[key]
                found.append(
                    [
                        [i, "formerly", j],
                        f"former name {old!r} is already claimed by policies[{k}].formerly[{m}]"
                        ": only one policy may own a former name's snapshots",
                    ]
                )
            else:
                claimed[key] = (i, j)
    return found


def _raise_duplicates(items: list[Any]) -> NoReturn:
    summary = "; ".join(message for _, message in items)
    raise PydanticCustomError("duplicate", "{summary}", {"summary": summary, "items": items})


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


# -- the fleet: target names, roles, external ids, globs

_TARGET_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?")
_ROLE_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
_ROLE_NAME = re.compile(r"[\w+=,.@/-]{1,512}")


def _target_name(value: str) -> str:
    if _TARGET_NAME.fullmatch(value) is None:
        raise ValueError(
            "a target name is letters, digits and hyphens, starting and ending with a letter "
            f"or digit, at most 64 characters (got {value!r})"
        )
    return value


def _role_arn(value: str) -> str:
    if _ROLE_ARN.fullmatch(value) is None:
        raise ValueError(
            "must be an IAM role ARN like 'arn:aws:iam::210987654321:role/snapworker' "
            f"(got {value!r})"
        )
    return value


def _external_id(value: str) -> str:
    if _EXTERNAL_ID.fullmatch(value) is None:
        raise ValueError(
            "an external id is 2 to 1224 characters of letters, digits and +=,.@:/-_ "
            f"(got {value!r})"
        )
    return value


def _role_name(value: str) -> str:
    if _ROLE_NAME.fullmatch(value) is None or value.startswith("arn:"):
        raise ValueError(
            f"must be an IAM role name (or path/name) like 'snapworker', not an ARN (got {value!r})"
        )
    return value


def _glob(value: str) -> str:
    if not value or value != value.strip():
        raise ValueError(f"must be a non-empty glob without surrounding spaces (got {value!r})")
    return value
