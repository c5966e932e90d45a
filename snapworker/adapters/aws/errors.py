"""What can go wrong calling AWS, and how each failure is classed: the error types (a setup
problem, exit 2; a refused or failed call, exit 1), the codes that are transient (throttling,
5xx, Redshift's "busy" state faults) and the translation of botocore's exceptions into them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from snapworker.errors import SnapworkerError, UsageError

if TYPE_CHECKING:
    pass

T = TypeVar("T")

STOPPING = "Stopping"
"""The code of the :class:`AwsError` a cut-short retry backoff raises when the daemon stops:
not AWS's answer, so what it interrupts is redone by the next tick or run."""

THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "DependentServiceRequestThrottlingFault",
        "DependentServiceRequestThrottling",
    }
)
SERVER_CODES = frozenset(
    {"InternalFailure", "InternalError", "ServiceUnavailable", "ServiceUnavailableException"}
)
MUTATIONS = frozenset(
    {
        "CreateClusterSnapshot",
        "CopyClusterSnapshot",
        "CreateTags",
        "DeleteTags",
        "AuthorizeSnapshotAccess",
        "RevokeSnapshotAccess",
        "DeleteClusterSnapshot",
        "ModifyClusterSnapshot",
        "RestoreFromClusterSnapshot",
        "DeleteCluster",
    }
)
# Redshift's "busy" faults: the resource exists but is changing; later it will not be.
BUSY_CODES: dict[str, frozenset[str]] = {
    "CreateClusterSnapshot": frozenset({"InvalidClusterState"}),
    "CopyClusterSnapshot": frozenset({"InvalidClusterSnapshotState"}),
    "AuthorizeSnapshotAccess": frozenset({"InvalidClusterSnapshotState"}),
    "DeleteCluster": frozenset({"InvalidClusterState"}),
}


CREDENTIALS_REFUSED = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    }
)
"""AWS's answers that mean "these credentials are no good" (expired, unknown): the setup
must be fixed (renew them), not the run."""

NO_REGION = "no AWS region: set aws.region in the config, or AWS_REGION"
NO_CREDENTIALS = "no AWS credentials found (standard chain: env, profile, instance role)"


class AwsSetupError(UsageError):
    """The AWS client cannot be set up or cannot sign a request: no region, an unknown
    profile, no credentials (exit 2; nothing was asked of AWS)."""


class TargetUnavailable(SnapworkerError):
    """A target the worker cannot act in: its role could not be assumed (refused, unknown,
    STS unreachable). The message is one line naming the role and AWS's answer, never a
    credential; the fleet reports the pair as ``error: TARGET/REGION: MESSAGE`` and goes on."""


class AwsError(SnapworkerError):
    """An AWS call that failed for good (after the retries its kind allows). Exit 1, or 2
    when AWS refused the credentials themselves (:data:`CREDENTIALS_REFUSED`)."""

    def __init__(
        self, operation: str, code: str, message: str, snapshot: str | None = None, status: int = 0
    ) -> None:
        self.operation = operation
        self.code = code
        self.message = message
        self.snapshot = snapshot
        self.status = status
        self.exit_code = 2 if self.credentials_refused else 1
        where = f" on {snapshot}" if snapshot else ""
        super().__init__(f"{operation}{where}: {code}: {message}")

    @property
    def credentials_refused(self) -> bool:
        return self.code in CREDENTIALS_REFUSED

    @property
    def transient(self) -> bool:
        if self.code in THROTTLE_CODES or self.code in SERVER_CODES or self.status >= 500:
            return True
        if self.code in ("ConnectionError", "ReadTimeout"):
            return True
        return self.code in BUSY_CODES.get(self.operation, frozenset())


def translate(operation: str, snapshot: str | None, fn: Callable[[], T]) -> T:
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        CredentialRetrievalError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        ReadTimeoutError,
        TokenRetrievalError,
    )
    from botocore.parsers import ResponseParserError

    try:
        return fn()
    except NoCredentialsError:
        raise AwsSetupError(NO_CREDENTIALS) from None
    except (
        PartialCredentialsError,
        CredentialRetrievalError,
        TokenRetrievalError,
        ProfileNotFound,
    ) as e:
        raise AwsSetupError(f"the AWS credentials could not be loaded: {e}") from None
    except ClientError as e:
        err = e.response.get("Error", {})
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        raise AwsError(
            operation,
            str(err.get("Code", "Unknown")),
            str(err.get("Message", "")),
            snapshot,
            status,
        ) from None
    except ReadTimeoutError as e:
        raise AwsError(operation, "ReadTimeout", str(e), snapshot) from None
    except (ConnectionError, HTTPClientError) as e:
        raise AwsError(operation, "ConnectionError", str(e), snapshot) from None
    except ResponseParserError as e:
        raise AwsError(operation, "InternalFailure", str(e)[:300], snapshot, 500) from None
