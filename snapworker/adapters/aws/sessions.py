"""Credentials per target: one boto3 session per target, one client per (target, region,
service), each made when first needed.

- A target without ``role_arn`` uses the worker's own credentials: the standard AWS chain
  (environment, ``aws.profile``, SSO, instance or task role), exactly as a one-account run.
- A target with ``role_arn`` gets a session whose credentials are botocore's own refreshable
  assumed-role credentials: :class:`botocore.credentials.AssumeRoleCredentialFetcher` (STS
  AssumeRole with the worker's credentials, ``RoleSessionName`` ``snapworker-<host>-<pid>``,
  the target's ``ExternalId``) behind
  :class:`botocore.credentials.DeferredRefreshableCredentials`, which calls AssumeRole again
  before the credentials expire (botocore refreshes 15 minutes ahead, and blocks every thread
  in the last 10). Nothing here refreshes by hand.

STS (and Organizations) go to ``aws.endpoint_url`` when it is set, as Redshift does, so the
sandbox (moto's server) answers all three; moto maps an assumed role's credentials to the
role's account.

Before a client of an assumed role is handed out, its credentials are fetched once, so a role
that cannot be assumed fails here, as :class:`TargetUnavailable`, before any call of the pair
(the fleet reports the pair and goes on). The next request for that target tries again: a
refusal is not cached.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from typing import TYPE_CHECKING, Any, cast

from snapworker.adapters.aws.client import CallStats, client_config, instrument, region_of
from snapworker.adapters.aws.errors import (
    NO_CREDENTIALS,
    NO_REGION,
    AwsSetupError,
    TargetUnavailable,
    translate,
)
from snapworker.core.targets import Pair

if TYPE_CHECKING:
    import boto3

    from snapworker.config import AwsConfig

__all__ = ["Sessions", "account_of_arn", "role_session_name"]

_SESSION_NAME_BAD = re.compile(r"[^A-Za-z0-9_+=,.@-]")
_ARN_ACCOUNT = re.compile(r"^arn:[^:]+:iam::(\d{12}):role/.+$")


def role_session_name(host: str | None = None, pid: int | None = None) -> str:
    """``snapworker-<host>-<pid>``: what CloudTrail shows as the session of every call the
    worker makes in a target account. STS allows ``[\\w+=,.@-]``, 2 to 64 characters: any
    other character becomes ``-``, and the host is cut so that the pid is always kept."""
    host = socket.gethostname() if host is None else host
    pid = os.getpid() if pid is None else pid
    tail = f"-{pid}"
    head = _SESSION_NAME_BAD.sub("-", f"snapworker-{host}" if host else "snapworker")
    return head[: 64 - len(tail)] + tail


def account_of_arn(role_arn: str) -> str:
    """The 12-digit account of an IAM role ARN (``arn:PARTITION:iam::ACCOUNT:role/NAME``)."""
    m = _ARN_ACCOUNT.match(role_arn)
    if not m:
        raise ValueError(f"not an IAM role ARN: {role_arn!r}")
    return m.group(1)


class _Fixed:
    """A credential provider that always answers the same credentials object: how a new
    botocore session is given the refreshable assumed-role credentials through its public
    component registry."""

    METHOD = "assume-role"
    CANONICAL_NAME = "snapworker-assume-role"

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    def load(self) -> Any:
        return self._credentials


class Sessions:
    """Sessions and clients for every target of a fleet (see the module docstring).

    Thread-safe: the fleet's pool asks for clients from many threads; each (target, region,
    service) client is made once. ``base`` (a ``boto3.Session``) replaces the standard chain
    in tests; ``session_name`` the ``snapworker-<host>-<pid>`` default."""

    def __init__(
        self,
        aws: AwsConfig,
        stats: CallStats,
        *,
        base: boto3.Session | None = None,
        session_name: str | None = None,
    ) -> None:
        self.aws = aws
        self.stats = stats
        self.session_name = session_name or role_session_name()
        self._base = base
        self._lock = threading.Lock()  # guards the dicts below
        self._create_lock = threading.RLock()  # botocore sessions are not thread-safe
        self._key_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._sessions: dict[str, boto3.Session] = {}
        self._verified: set[str] = set()
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._own_account: str | None = None

    # -- sessions ---------------------------------------------------------------------------

    def base_session(self) -> boto3.Session:
        """The worker's own session: the standard chain, ``aws.profile`` when set."""
        with self._create_lock:
            if self._base is None:
                import boto3
                from botocore.exceptions import ProfileNotFound

                try:
                    self._base = boto3.session.Session(
                        profile_name=self.aws.profile, region_name=region_of(self.aws)
                    )
                except ProfileNotFound as e:
                    raise AwsSetupError(
                        f"AWS profile {e.kwargs.get('profile')!r} not found (aws.profile or "
                        "AWS_PROFILE; the profiles are in ~/.aws/config and ~/.aws/credentials)"
                    ) from None
            return self._base

    def session_for(self, pair: Pair) -> boto3.Session:
        """The pair's target's session (one per target, whatever the region): the base one
        without a role, else one with refreshable assumed-role credentials. Nothing is asked
        of STS here (see :meth:`client`)."""
        if pair.role_arn is None:
            return self.base_session()
        with self._key_lock(("session", pair.target)):
            with self._lock:
                found = self._sessions.get(pair.target)
            if found is not None:
                return found
            session = self._assumed_session(pair)
            with self._lock:
                self._sessions[pair.target] = session
            return session

    def _assumed_session(self, pair: Pair) -> boto3.Session:
        import boto3
        import botocore.session
        from botocore.credentials import (
            AssumeRoleCredentialFetcher,
            CredentialResolver,
            DeferredRefreshableCredentials,
        )

        assert pair.role_arn is not None
        base = self.base_session()
        with self._create_lock:
            base_core = base._session  # the botocore session under boto3's
            source = base_core.get_credentials()
        if source is None:
            raise AwsSetupError(NO_CREDENTIALS)
        extra: dict[str, Any] = {"RoleSessionName": self.session_name}
        if pair.external_id:
            extra["ExternalId"] = pair.external_id
        region = pair.region
        endpoint_url = self.aws.endpoint_url
        cfg = client_config(self.aws)
        stats = self.stats

        def sts_client(service: str, **kwargs: Any) -> Any:
            # What the fetcher calls for its STS client (with the source credentials):
            # the pair's region, the sandbox's endpoint when set, counted like every call.
            with self._create_lock:
                client = base_core.create_client(
                    service, region_name=region, endpoint_url=endpoint_url, config=cfg, **kwargs
                )
            instrument(client, stats)
            return client

        fetcher = AssumeRoleCredentialFetcher(
            client_creator=sts_client,
            source_credentials=source,
            role_arn=pair.role_arn,
            extra_args=extra,
        )
        credentials = DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )
        with self._create_lock:
            core = botocore.session.Session()
            # Share the (read-only, cached) service models: a hundred targets load them once.
            core.register_component("data_loader", base_core.get_component("data_loader"))
            core.register_component(
                "credential_provider",
                CredentialResolver(providers=[cast(Any, _Fixed(credentials))]),
            )
            return boto3.session.Session(botocore_session=core, region_name=region)

    # -- clients ----------------------------------------------------------------------------

    def client(self, pair: Pair, service: str = "redshift", stats: CallStats | None = None) -> Any:
        """The pair's client of ``service``, made on first use (configured as
        :func:`~snapworker.adapters.aws.client.make_client` does, counted in ``stats``, else
        in the sessions' own: a fleet counts each pair's calls apart). For
        an assumed role, the first call fetches its credentials: a refusal raises
        :class:`TargetUnavailable` (``cannot assume role ARN: CODE: MESSAGE``)."""
        key = (pair.target, pair.region, service)
        with self._lock:
            found = self._clients.get(key)
        if found is not None:
            return found
        with self._key_lock(("client", *key)):
            with self._lock:
                found = self._clients.get(key)
            if found is not None:
                return found
            session = self.session_for(pair)
            if pair.role_arn is not None:
                self._verify(pair, session)
            client = self._make_client(session, service, pair.region, stats or self.stats)
            with self._lock:
                self._clients[key] = client
            return client

    def _make_client(
        self, session: boto3.Session, service: str, region: str, stats: CallStats
    ) -> Any:
        from botocore.exceptions import NoRegionError

        try:
            with self._create_lock:
                client = cast(Any, session).client(
                    service,
                    region_name=region or None,
                    endpoint_url=self.aws.endpoint_url,
                    config=client_config(self.aws),
                )
        except NoRegionError:
            raise AwsSetupError(NO_REGION) from None
        instrument(client, stats)
        return client

    def _verify(self, pair: Pair, session: boto3.Session) -> None:
        """Fetch the role's credentials once (AssumeRole), so that a refusal is known before
        the pair makes any call."""
        with self._lock:
            if pair.target in self._verified:
                return
        assert pair.role_arn is not None
        try:
            credentials = session.get_credentials()
            assert credentials is not None
            credentials.get_frozen_credentials()
        except AwsSetupError:
            raise
        except Exception as e:  # every way AssumeRole fails (refused, unreachable) names the target
            raise TargetUnavailable(f"cannot assume role {pair.role_arn}: {_one_line(e)}") from None
        with self._lock:
            self._verified.add(pair.target)

    # -- accounts ---------------------------------------------------------------------------

    def caller_account(self, pair: Pair) -> str:
        """The pair's account: from the role ARN, else (the worker's own credentials) STS
        GetCallerIdentity, asked once."""
        if pair.role_arn is not None:
            return account_of_arn(pair.role_arn)
        with self._key_lock(("caller",)):
            if self._own_account is None:
                sts = self.client(pair, "sts")
                ident = translate("GetCallerIdentity", None, sts.get_caller_identity)
                self._own_account = str(ident["Account"])
            return self._own_account

    def known_account(self) -> str | None:
        """The worker's own account if GetCallerIdentity already answered, else None (never
        a call)."""
        return self._own_account

    def _key_lock(self, key: tuple[str, ...]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())


def _one_line(e: BaseException) -> str:
    """AWS's code and message of a refusal, else the exception, on one line."""
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        text = f"{err.get('Code', 'Unknown')}: {err.get('Message', '')}".rstrip(": ")
    else:
        text = f"{type(e).__name__}: {e}"
    return " ".join(text.split())
