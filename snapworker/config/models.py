"""The configuration's pydantic models: strict (a quoted ``"3"`` is not an integer), closed
(an unknown key is an error) and frozen. The value checks live in :mod:`.checks`; reading a
file into these models is :func:`snapworker.config.load_config`.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from snapworker.config.checks import (
    _ACCOUNT_RE,
    _ROLE_ARN,
    _account,
    _account_input,
    _check_name,
    _cluster_pattern,
    _cron,
    _db_check,
    _duplicates,
    _duration,
    _external_id,
    _former_name_conflicts,
    _glob,
    _hold_tag,
    _host,
    _http_url,
    _in_range,
    _keep_count,
    _non_blank,
    _policy_name,
    _policy_name_duplicates,
    _raise_duplicates,
    _region,
    _role_arn,
    _role_name,
    _select_tag_key,
    _select_tag_value,
    _state_url,
    _target_name,
    _timezone,
)
from snapworker.core.targets import DEFAULT_TARGET, Pair, matches

if TYPE_CHECKING:
    from snapworker.core import policy as core_policy


_DURATION = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "examples": ["2d", "1w", "1d12h", "36h"]},
            {"type": "null"},
        ]
    }
)
"""A duration's JSON Schema: the text (not ISO 8601's ``format: duration``)."""


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
    unshare_after: Annotated[timedelta | None, BeforeValidator(_duration), _DURATION] = None
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
    """Keep snapshots younger than this many days (1 to 36500)."""
    keep_last: Annotated[int, AfterValidator(_keep_count)] | None = None
    """Keep the newest N snapshots per cluster (-1: all)."""
    keep_hourly: Annotated[int, AfterValidator(_keep_count)] | None = None
    """Keep the newest snapshot of each of the last N hours that have one (-1: all)."""
    keep_daily: Annotated[int, AfterValidator(_keep_count)] | None = None
    """Keep the newest snapshot of each of the last N days that have one (-1: all)."""
    keep_weekly: Annotated[int, AfterValidator(_keep_count)] | None = None
    """Keep the newest snapshot of each of the last N ISO weeks that have one (-1: all)."""
    keep_monthly: Annotated[int, AfterValidator(_keep_count)] | None = None
    """Keep the newest snapshot of each of the last N months that have one (-1: all)."""
    keep_yearly: Annotated[int, AfterValidator(_keep_count)] | None = None
    """Keep the newest snapshot of each of the last N years that have one (-1: all)."""
    keep_within: Annotated[timedelta | None, BeforeValidator(_duration), _DURATION] = None
    """Keep every snapshot taken within this duration of the newest one ('2d', '1w')."""
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


def _regions_unique(regions: list[str]) -> list[str]:
    found = _duplicates(enumerate(regions), "region", "regions")
    if found:
        _raise_duplicates([[[index], message] for index, message in found])
    return regions


_Regions = Annotated[
    list[Annotated[str, AfterValidator(_region)]],
    Field(min_length=1),
    AfterValidator(_regions_unique),
]
"""A target's regions: at least one, each once."""


class Target(_Model):
    """One AWS account the worker covers, in the regions listed: with the worker's own
    credentials (no ``role_arn``), or through a role it assumes."""

    name: Annotated[str, AfterValidator(_target_name)]
    """Letters, digits and hyphens (at most 64), unique (compared case-insensitively): it
    names the target in ``--target``, in a policy's ``targets``, in messages and metrics."""
    role_arn: Annotated[str, AfterValidator(_role_arn)] | None = None
    """The role assumed (STS AssumeRole) to reach the target's account; none: the worker's
    own credentials."""
    external_id: Annotated[str, AfterValidator(_external_id)] | None = None
    """Passed to AssumeRole as ExternalId (the role's trust policy asks for it); needs
    role_arn."""
    regions: _Regions
    """The regions of the account the worker covers (each a (target, region) pair)."""

    @field_validator("external_id")
    @classmethod
    def _external_id_needs_role(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A role_arn that failed its own check is absent from info.data: not reported twice.
        if value is not None and info.data.get("role_arn", "") is None:
            raise ValueError("external_id is passed to AssumeRole: it needs a role_arn")
        return value

    @property
    def account(self) -> str | None:
        """The role's account (from its ARN); None for the worker's own credentials."""
        if self.role_arn is None:
            return None
        m = _ROLE_ARN.fullmatch(self.role_arn)
        return m.group(1) if m else None

    def pairs(self) -> list[Pair]:
        return [
            Pair(self.name, r, self.account, self.role_arn, self.external_id) for r in self.regions
        ]


def _target_name_duplicates(names: Iterable[tuple[int, str]]) -> list[Any]:
    found = _duplicates(names, "target name", "targets", ", as leases and state name targets")
    return [[[index, "name"], message] for index, message in found]


def _same_account_and_region(targets: Sequence[Target]) -> list[Any]:
    """A region of a target whose account an earlier target already covers in that region
    (the same role account; or the worker's own credentials, twice): the work, the state
    and the leases of an account and region are one pair's."""
    first: dict[tuple[str | None, str], int] = {}
    found: list[Any] = []
    for i, t in enumerate(targets):
        for j, region in enumerate(t.regions):
            k = first.setdefault((t.account, region), i)
            if k != i:
                whose = (
                    f"account {t.account}"
                    if t.account is not None
                    else "the worker's own credentials' account (no role_arn)"
                )
                found.append(
                    [
                        [i, "regions", j],
                        f"{whose} in {region} is already covered by target "
                        f"{targets[k].name!r} (targets[{k}]): one account and region is one "
                        "target's (its state and leases are keyed by account and region)",
                    ]
                )
    return found


class AccountFilter(_Model):
    """Globs over the account ids and names Organizations lists."""

    include: list[Annotated[str, AfterValidator(_glob)]] = Field(default_factory=lambda: ["*"])
    """An account is taken when its id or its name matches one of these (default: all)."""
    exclude: list[Annotated[str, AfterValidator(_glob)]] = Field(default_factory=list)
    """...and left out when its id or its name matches one of these."""


class Organization(_Model):
    """More targets, discovered with Organizations ListAccounts: each active account that
    ``accounts`` selects, reached by assuming ``arn:aws:iam::<account>:role/<role_name>``."""

    role_name: Annotated[str, AfterValidator(_role_name)]
    """The role assumed in each account: ``arn:<partition>:iam::<account>:role/<role_name>``
    (a name, or path/name; not an ARN)."""
    external_id: Annotated[str, AfterValidator(_external_id)] | None = None
    """Passed to AssumeRole as ExternalId in every discovered account."""
    regions: _Regions
    """The regions covered in every discovered account."""
    accounts: AccountFilter = AccountFilter()
    """Which accounts: ``include`` globs, then ``exclude`` globs, over ids and names."""


class FleetConfig(_Model):
    """How the fleet's (target, region) pairs are worked."""

    max_parallel_targets: Annotated[int, _in_range(1, 256)] = 8
    """(target, region) pairs worked at once; each keeps its own per-cluster concurrency."""
    lease_seconds: Annotated[int, _in_range(5, 3600)] = 120
    """The lease of each (policy, target, region): a replica that stops renewing it (killed,
    frozen) holds the pair up this long at most."""


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
    formerly: list[Annotated[str, AfterValidator(_policy_name)]] = Field(default_factory=list)
    """Former names of this policy (after a rename): it owns their snapshots (ids, tags and
    state DB records), copies nothing again, and rewrites their tags to its own name."""
    targets: list[Annotated[str, AfterValidator(_glob)]] | None = None
    """Globs over target names (shell-style, case-sensitive) this policy applies to; left
    out: every target. A discovered account's target name is its 12-digit id."""

    @field_validator("targets")
    @classmethod
    def _targets_not_empty(cls, targets: list[str] | None) -> list[str] | None:
        if targets is not None and not targets:
            raise ValueError(
                "an empty list would apply the policy to no target: leave targets out (every "
                "target) or list globs over target names"
            )
        return targets

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
        return _policy_name(name)

    @property
    def timezone(self) -> str:
        """The policy's time zone: ``create.timezone``, else UTC."""
        return self.create.timezone if self.create is not None else "UTC"

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, without the cached :attr:`core` (``update`` may change what it holds)."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("core", None)
        return copied

    @cached_property
    def core(self) -> core_policy.Policy:
        """What the core (planner, explanation) reads of this policy, built once per model
        (the model is frozen, and :meth:`model_copy` drops it, so it never goes stale)."""
        # Here, not at the top, for start-up time: `validate` never builds one (~5 ms).
        from snapworker.core import policy as core_policy

        r = self.retention
        return core_policy.Policy(
            name=self.name,
            select=core_policy.Select(tuple(self.select.clusters), dict(self.select.tags)),
            create=(
                core_policy.CreateSpec(self.create.schedule, self.create.timezone)
                if self.create is not None
                else None
            ),
            copy_automated=self.copy_automated,
            share=core_policy.ShareSpec(
                tuple(self.share.accounts), self.share.unshare_after, self.share.revoke_unlisted
            ),
            retention=core_policy.Retention(
                max_age_days=r.max_age_days,
                keep_last=r.keep_last,
                keep_hourly=r.keep_hourly,
                keep_daily=r.keep_daily,
                keep_weekly=r.keep_weekly,
                keep_monthly=r.keep_monthly,
                keep_yearly=r.keep_yearly,
                keep_within=r.keep_within,
                fail_safe_days=r.fail_safe_days,
            ),
            limits=core_policy.Limits(self.limits.max_deletes_per_run),
            hold_tag=self.hold_tag,
            formerly=tuple(self.formerly),
            verify=(
                core_policy.VerifySpec(self.verify.schedule, self.verify.timezone)
                if self.verify is not None
                else None
            ),
        )


class ReportConfig(_Model):
    """What the reports show beyond the plan itself."""

    price_per_gb_month: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    """The price of a GB of snapshot storage per month (e.g. 0.024), in any currency: the
    reports then turn sizes into a monthly cost in that currency. Without it, no money
    figure is printed anywhere."""


class Config(_Model):
    """The whole configuration. See the module docstring for relative SQLite paths."""

    state_url: Annotated[str, AfterValidator(_state_url)] = "sqlite:///snapworker.db"
    aws: AwsConfig = AwsConfig()
    retry: RetryConfig = RetryConfig()
    daemon: DaemonConfig = DaemonConfig()
    report: ReportConfig = ReportConfig()
    targets: list[Target] | None = None
    """The accounts and regions the worker covers; left out (with no organization): one
    target, ``default``, the credentials' own account in ``aws.region``."""
    organization: Organization | None = None
    """More targets, discovered with Organizations ListAccounts at run time."""
    fleet: FleetConfig = FleetConfig()
    """How the (target, region) pairs are worked: parallelism and leases."""
    policies: list[Policy]

    _source_path: Path | None = PrivateAttr(default=None)

    @field_validator("policies")
    @classmethod
    def _policies_valid(cls, policies: list[Policy]) -> list[Policy]:
        if not policies:
            raise ValueError("must define at least one policy")
        found = _policy_name_duplicates((i, p.name) for i, p in enumerate(policies))
        found += _former_name_conflicts([(p.name, p.formerly) for p in policies])
        if found:
            _raise_duplicates(found)
        return policies

    @field_validator("targets")
    @classmethod
    def _targets_unique(cls, targets: list[Target] | None) -> list[Target] | None:
        if targets is None:
            return None
        if not targets:
            raise ValueError("must list at least one target (or leave targets out)")
        found = _target_name_duplicates((i, t.name) for i, t in enumerate(targets))
        found += _same_account_and_region(targets)
        if found:
            _raise_duplicates(found)
        return targets

    @model_validator(mode="after")
    def _names_apart_from_discovered(self) -> Config:
        if self.organization is None or self.targets is None:
            return self
        found = [
            [
                ["targets", i, "name"],
                f"{t.name!r} is a 12-digit account id: with organization, that is the name of "
                "a discovered account's target; name this target otherwise",
            ]
            for i, t in enumerate(self.targets)
            if _ACCOUNT_RE.fullmatch(t.name)
        ]
        if found:
            _raise_duplicates(found)
        return self

    @property
    def is_fleet(self) -> bool:
        """Whether the config names its targets (``targets:`` or ``organization:``); else the
        worker covers one pair, its credentials' own account in ``aws.region``."""
        return self.targets is not None or self.organization is not None

    def static_pairs(self, default_region: str | None = None) -> list[Pair]:
        """The (target, region) pairs ``targets:`` lists, in order (Organizations adds more at
        run time: ``snapworker.service.fleet``). Without ``targets:`` nor ``organization:``:
        one pair, ``default`` in ``default_region`` (``aws.region``, else the chain's)."""
        if self.targets is not None:
            return [pair for t in self.targets for pair in t.pairs()]
        if self.organization is not None:
            return []
        region = self.aws.region or default_region
        return [Pair(DEFAULT_TARGET, region or "")]

    def policies_for(self, target: str) -> list[Policy]:
        """The policies that apply to ``target`` (their ``targets`` globs; none: all)."""
        return [p for p in self.policies if matches(target, p.targets)]

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
