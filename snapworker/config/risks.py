"""What a configuration that loads may still get wrong: warnings, and one error only AWS sees.

:func:`snapworker.config.load_config` refuses what is wrong in the file alone. These checks
look across policies, or at AWS, for what is legal but almost never meant:

- two policies that copy the same cluster's automated snapshots (each makes its own copy of
  every one, so the copies and their cost double): :func:`copy_overlaps` guesses it from the
  ``select`` patterns, :func:`copy_overlaps_on` knows it from the real cluster list;
- a policy that makes snapshots with no retention rule (nothing it makes ever expires):
  :func:`unbounded_policies`;
- sharing with the account that owns the snapshots, which AWS refuses on every run, so it is
  an error; only AWS knows the account: :func:`shares_with_owner`;
- snapshots whose ownership tags name a policy the config no longer defines (a rename
  without ``formerly``): :func:`orphaned_policies_on`, from the real snapshot list;
- a policy's ``targets`` glob that matches no target, and a target no policy applies to:
  :func:`unmatched_targets` (with ``organization:``, a glob that may match a discovered
  account's name, its 12-digit id, is left alone: those are known at run time only).

Each returns findings: a location in the configuration, spelled as pydantic spells it
(``("policies", 0, "share", "accounts", 1)``), and a message.
:func:`snapworker.config.loader.locate` turns them into problems that name the file, the line,
the policy and the field, like the errors of a load.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from snapworker.config.loader import locate
from snapworker.config.models import Config, Policy, Select
from snapworker.config.problems import Finding, Problem
from snapworker.core.targets import DEFAULT_TARGET, matches

if TYPE_CHECKING:
    from snapworker.core.model import Cluster, Snapshot

__all__ = [
    "Finding",
    "assess",
    "config_warnings",
    "copy_overlaps",
    "copy_overlaps_on",
    "may_match_account_id",
    "orphaned_policies_on",
    "shares_with_owner",
    "unbounded_policies",
    "unmatched_targets",
]

_GLOB_CHARS = frozenset("*?[")
_CHECK_FOR_REAL = " (`snapworker validate --aws` checks the real clusters)"
_MAX_POLICIES_PAIRED = 200
"""Up to this many policies with ``copy_automated``, every pair is compared (at most ~20,000
pairs); above it, only equal patterns are found, in one pass."""


def assess(
    config: Config,
    file: str | None = None,
    *,
    account: str | None = None,
    clusters: Iterable[Cluster] | None = None,
    snapshots: Iterable[Snapshot] | None = None,
) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) about ``config``, located in ``file`` (see :func:`.loader.locate`).
    ``account``: the account that owns the snapshots, when AWS told it; ``clusters``: the
    real clusters, when AWS was asked (else the overlaps are guessed from the patterns);
    ``snapshots``: the real snapshots, when AWS was asked (``validate --aws``)."""
    errors = shares_with_owner(config, account)
    if clusters is None:
        warnings = config_warnings(config)
    else:
        warnings = config_warnings(config, overlaps=False) + copy_overlaps_on(config, clusters)
    if snapshots is not None:
        warnings += orphaned_policies_on(config, snapshots, account)
    return locate(config, errors, file), locate(config, warnings, file)


def config_warnings(config: Config, *, overlaps: bool = True) -> list[Finding]:
    """The warnings the configuration alone gives. ``overlaps=False`` leaves out the guess
    from ``select`` patterns, for a caller that checks the real clusters instead."""
    found = unbounded_policies(config) + unmatched_targets(config)
    if overlaps:
        found += copy_overlaps(config)
    return found


def unbounded_policies(config: Config) -> list[Finding]:
    """Policies that make snapshots with no retention rule: nothing they make expires.
    ``fail_safe_days`` bounds them (AWS deletes on its own clock), so it silences this."""
    found: list[Finding] = []
    for i, p in enumerate(config.policies):
        makes = p.create is not None or p.copy_automated
        if makes and not p.retention.has_rules and p.retention.fail_safe_days is None:
            found.append(
                (
                    ("policies", i, "retention"),
                    "no retention rule: nothing this policy makes ever expires, so its snapshots "
                    "grow without bound (set keep_last, max_age_days, keep_within or a "
                    "keep_daily-style rule)",
                )
            )
    return found


def unmatched_targets(config: Config) -> list[Finding]:
    """Each glob of a policy's ``targets`` that matches no target the config names (without
    ``targets:`` nor ``organization:``, the one target is ``default``), unless it may match
    a discovered account's id; and each listed target that no policy applies to."""
    names = (
        [t.name for t in config.targets]
        if config.targets is not None
        else []
        if config.organization is not None
        else [DEFAULT_TARGET]
    )
    found: list[Finding] = []
    for i, p in enumerate(config.policies):
        for j, glob in enumerate(p.targets or ()):
            if any(matches(name, [glob]) for name in names):
                continue
            if config.organization is not None and may_match_account_id(glob):
                continue
            if not config.is_fleet:
                why = f"without targets: or organization:, the one target is {DEFAULT_TARGET!r}"
            elif config.targets is None:
                why = "no target is listed, and a discovered account's name is its 12-digit id"
            else:
                listed = ", ".join(repr(n) for n in names[:10])
                more = f" and {len(names) - 10} more" if len(names) > 10 else ""
                why = f"the targets are {listed}{more}"
                if config.organization is not None:
                    why += ", and a discovered account's name is its 12-digit id"
            nowhere = not any(matches(n, p.targets) for n in names) and not (
                config.organization is not None
                and any(may_match_account_id(g) for g in p.targets or ())
            )
            found.append(
                (
                    ("policies", i, "targets", j),
                    f"{glob!r} matches no target ({why})"
                    + ("; the policy applies to no target" if nowhere else ""),
                )
            )
    for k, t in enumerate(config.targets or ()):
        if not config.policies_for(t.name):
            found.append(
                (
                    ("targets", k, "name"),
                    "no policy applies to this target (each policy's targets leave it out): "
                    "the worker does nothing there",
                )
            )
    return found


def may_match_account_id(glob: str) -> bool:
    """Whether ``glob`` may match some 12-digit account id: every literal character of it
    is a digit (``*``, ``?`` and ``[...]`` may match digits). Errs towards True."""
    literal = re.sub(r"\[[^\]]*\]|[*?]", "", glob)
    return all(c.isdigit() for c in literal)


def copy_overlaps(config: Config) -> list[Finding]:
    """Pairs of policies with ``copy_automated`` whose ``select`` can pick the same cluster:
    a cluster name that the other's pattern matches, the same pattern in both, or one glob
    matching the other's text (``prod-a*`` and ``prod-*``, ``*`` and anything). Tags that
    differ on one key keep them apart. Above :data:`_MAX_POLICIES_PAIRED` copying policies,
    only the same pattern in two policies is found (comparing every pair is quadratic)."""
    copying = [(i, p) for i, p in enumerate(config.policies) if p.copy_automated]
    found: list[Finding] = []
    if len(copying) > _MAX_POLICIES_PAIRED:
        first: dict[str, Policy] = {}
        for j, later in copying:
            for pattern in later.select.clusters:
                earlier = first.setdefault(pattern, later)
                if earlier is not later and _tags_may_meet(earlier.select, later.select):
                    found.append(_overlap(j, [earlier], _matching(pattern), _CHECK_FOR_REAL))
                    break
        return found
    for n, (_, earlier) in enumerate(copying):
        for j, later in copying[n + 1 :]:
            where = _common(earlier.select, later.select)
            if where is not None:
                found.append(_overlap(j, [earlier], where, _CHECK_FOR_REAL))
    return found


def copy_overlaps_on(config: Config, clusters: Iterable[Cluster]) -> list[Finding]:
    """The policies with ``copy_automated`` that select the same real cluster: one finding
    per set of policies, on the last of them, naming the others and the clusters."""
    # Here, not at the top: plain `validate` never needs the planner (~25 ms to import).
    from snapworker.core.planner import selects

    copying = [(i, p) for i, p in enumerate(config.policies) if p.copy_automated]
    shared: dict[tuple[int, ...], list[str]] = {}
    for cluster in sorted(clusters, key=lambda c: c.id):
        chosen = tuple(i for i, p in copying if selects(p.core, cluster))
        if len(chosen) > 1:
            shared.setdefault(chosen, []).append(cluster.id)
    found: list[Finding] = []
    for chosen, ids in shared.items():
        *others, last = chosen
        shown = ", ".join(repr(c) for c in ids[:5])
        more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
        what = f"cluster {shown}" if len(ids) == 1 else f"clusters {shown}{more}"
        found.append(_overlap(last, [config.policies[i] for i in others], what))
    return found


def orphaned_policies_on(
    config: Config, snapshots: Iterable[Snapshot], account: str | None = None
) -> list[Finding]:
    """One warning per policy that owns snapshots (proven by their tags; ``validate`` reads
    no state DB) but that the config no longer defines, nor lists in a ``formerly``: the
    line ``plan`` and ``run`` print too."""
    # Here, not at the top: plain `validate` never needs the planner (~25 ms to import).
    from snapworker.core.model import Inventory, State
    from snapworker.core.planner import index_estate, orphan_warning

    renames = {old: p.name for p in config.policies for old in p.formerly}
    inventory = Inventory(clusters={}, snapshots={s.id: s for s in snapshots})
    idx = index_estate(inventory, State(), account, renames)
    known = {p.name for p in config.policies}
    return [
        (("policies",), orphan_warning(name, idx.owned[name]))
        for name in sorted(set(idx.owned) - known)
        if idx.owned[name]
    ]


def shares_with_owner(config: Config, account: str | None) -> list[Finding]:
    """Each ``share.accounts`` entry that is ``account``, the account that owns the snapshots
    (None: unknown, nothing to check). AWS refuses to share a snapshot with its owner."""
    if account is None:
        return []
    return [
        (
            ("policies", i, "share", "accounts", j),
            f"{account} is the account that owns the snapshots: AWS refuses to share a snapshot "
            "with its own account, so every run would fail to share it; remove it",
        )
        for i, p in enumerate(config.policies)
        for j, listed in enumerate(p.share.accounts)
        if listed == account
    ]


def _overlap(index: int, others: Sequence[Policy], what: str, hint: str = "") -> Finding:
    names = [repr(p.name) for p in others]
    who = (
        f"policy {names[0]} also copies"
        if len(names) == 1
        else f"policies {', '.join(names[:-1])} and {names[-1]} also copy"
    )
    return (
        ("policies", index, "copy_automated"),
        f"{who} the automated snapshots of {what}: each policy makes its own copy of every "
        f"one{hint}",
    )


def _common(a: Select, b: Select) -> str | None:
    """How ``a`` and ``b`` can select the same cluster (for a message), or None if they
    cannot as far as this check sees."""
    if not _tags_may_meet(a, b):
        return None
    for pa in a.clusters:
        for pb in b.clusters:
            if pa == pb:
                return _matching(pa)
            if _literal(pa) and fnmatch.fnmatchcase(pa, pb):
                return f"cluster {pa!r}"
            if _literal(pb) and fnmatch.fnmatchcase(pb, pa):
                return f"cluster {pb!r}"
    for pa in a.clusters:
        for pb in b.clusters:
            if fnmatch.fnmatchcase(pa, pb) or fnmatch.fnmatchcase(pb, pa):
                return f"any cluster matching both {pa!r} and {pb!r}"
    return None


def _tags_may_meet(a: Select, b: Select) -> bool:
    """False when one tag key must have two values: no cluster has both."""
    return not any(k in b.tags and b.tags[k] != v for k, v in a.tags.items())


def _matching(pattern: str) -> str:
    return f"cluster {pattern!r}" if _literal(pattern) else f"any cluster matching {pattern!r}"


def _literal(pattern: str) -> bool:
    return not _GLOB_CHARS.intersection(pattern)
