"""What IAM actions each kind of work needs, declared on the code that does the work.

Cloud Custodian style: the function that makes the AWS calls says which IAM actions they need
(``@needs("observe", "redshift:DescribeClusters", ...)``; the executor's ``@handler`` does the
same for each action kind), so a new call and its permission are added in one place. The IAM
generator (``snapworker.service.permissions``) reads :data:`DECLARED` for the action names and
adds only the scoping (resources, conditions), and ``tests/test_iam_policy.py`` fails when the
gateway can make a call that no declaration covers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["DECLARED", "Declared", "declare", "needs"]

F = TypeVar("F", bound=Callable[..., object])


@dataclass(frozen=True)
class Declared:
    """One kind of work: the IAM actions it may call (``service:Action``), and why."""

    kind: str
    actions: tuple[str, ...]
    why: str


DECLARED: dict[str, Declared] = {}
"""Every declared kind; several functions may declare the same kind (their actions add up)."""


def declare(kind: str, actions: tuple[str, ...], why: str = "") -> Declared:
    """Record that ``kind`` calls ``actions`` (each ``service:Action``)."""
    for action in actions:
        if ":" not in action:
            raise ValueError(f"{kind}: IAM action {action!r} needs its service prefix")
    known = DECLARED.get(kind)
    if known is not None:
        merged = known.actions + tuple(a for a in actions if a not in known.actions)
        why, actions = known.why or why, merged
    DECLARED[kind] = Declared(kind, actions, why)
    return DECLARED[kind]


def _summary(fn: Callable[..., object]) -> str:
    doc = (fn.__doc__ or "").strip()
    return doc.split("\n\n", 1)[0].replace("\n", " ") if doc else fn.__name__


def needs(kind: str, *actions: str) -> Callable[[F], F]:
    """Decorator: the function does work of ``kind``, which calls ``actions``."""

    def register(fn: F) -> F:
        declare(kind, actions, _summary(fn))
        return fn

    return register
