"""External Redshift events from an SQS queue: parse a message (pure), and the poller thread.

In production the queue is fed by one of:

- an **EventBridge rule** on ``source: aws.redshift`` (detail types such as
  ``Redshift Cluster Notification``, ``Redshift Cluster Snapshot Notification``): the message
  body is the EventBridge event, ``{"source": "aws.redshift", "detail-type": ...,
  "resources": [ARN, ...], "detail": {"SourceIdentifier": ..., "SourceType": ...}}``;
- an **SNS subscription** to a Redshift event subscription's topic: the body is the SNS
  envelope ``{"Type": "Notification", "Message": "<text>"}`` whose message is Redshift's
  notification (``{"Event Source": "cluster", "Source ID": "prod-a", "Event Message": ...}``),
  or an EventBridge event sent on through SNS; a raw-delivery subscription puts that
  message in the body directly.

Every shape gives the cluster identifier: from the source id when the source is a cluster,
from an ARN (``...:cluster:NAME`` or ``...:snapshot:CLUSTER/SNAPSHOT``), or from a field that
names the cluster. A Redshift event whose cluster cannot be told (a snapshot event with the
snapshot id only) asks for a reconcile of every policy. Anything else is a bad message:
:class:`BadMessage` says why, and the poller logs it and deletes it (or leaves it for the
queue's redrive policy, ``daemon.delete_bad_messages: false``). Nothing a message holds
ever stops the daemon; the worst a forged message can do is cause an early reconcile.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from snapworker.errors import SnapworkerError

MAX_BODY = 256 * 1024  # SQS's own limit
_ARN = re.compile(r"^arn:aws[a-z-]*:redshift:[^:]*:[^:]*:(cluster|snapshot):(.+)$")
_CLUSTER_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class BadMessage(SnapworkerError, ValueError):
    """A message that is not a Redshift event snapworker understands; says why."""


@dataclass(frozen=True)
class RedshiftEvent:
    """What a message tells: which cluster (None: unknown, reconcile every policy)."""

    cluster: str | None
    snapshot: str | None = None
    source: str = ""  # "eventbridge", "sns" or "redshift"
    detail: str = ""  # the event's type or message, for the log


def _lower_keys(d: Mapping[str, Any]) -> dict[str, Any]:
    return {
        str(k).lower().replace(" ", "").replace("-", "").replace("_", ""): v for k, v in d.items()
    }


def _cluster_from_arn(arn: Any) -> tuple[str | None, str | None]:
    if not isinstance(arn, str):
        return None, None
    m = _ARN.match(arn)
    if not m:
        return None, None
    kind, rest = m.groups()
    if kind == "cluster":
        return rest, None
    cluster, _, snap = rest.partition("/")
    return (cluster or None), (snap or None)


def _valid_cluster(value: Any) -> str | None:
    if isinstance(value, str) and _CLUSTER_ID.match(value.strip().lower()):
        return value.strip().lower()
    return None


def _from_detail(
    detail: Mapping[str, Any], resources: Any, source: str, what: str
) -> RedshiftEvent:
    d = _lower_keys(detail)
    snapshot: str | None = None
    for key in ("clusteridentifier", "cluster"):
        cluster = _valid_cluster(d.get(key))
        if cluster:
            return RedshiftEvent(cluster, None, source, what)
    for arn in [d.get("sourcearn"), *(resources if isinstance(resources, list) else [])]:
        cluster, snap = _cluster_from_arn(arn)
        if cluster:
            return RedshiftEvent(_valid_cluster(cluster), snap, source, what)
    source_type = str(d.get("sourcetype") or d.get("eventsource") or "").lower()
    source_id = d.get("sourceidentifier") or d.get("sourceid")
    if source_type in ("cluster", "") and _valid_cluster(source_id):
        return RedshiftEvent(_valid_cluster(source_id), None, source, what)
    if "snapshot" in source_type and isinstance(source_id, str) and source_id:
        snapshot = source_id
    if snapshot is not None:
        return RedshiftEvent(None, snapshot, source, what)
    raise BadMessage(f"a Redshift event without a cluster or snapshot identifier ({what})")


def parse_message(body: str) -> RedshiftEvent:
    """The cluster a queue message is about; raises :class:`BadMessage` with the reason."""
    if len(body) > MAX_BODY:
        raise BadMessage(f"message of {len(body)} characters is too large")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise BadMessage(f"not JSON: {e}") from None
    return _parse(data, depth=0)


def _parse(data: Any, depth: int) -> RedshiftEvent:
    if not isinstance(data, dict):
        raise BadMessage(f"expected a JSON object, got {type(data).__name__}")
    if depth > 2:
        raise BadMessage("too deeply wrapped")
    # SNS envelope (possibly carrying an EventBridge event or Redshift's notification).
    if data.get("Type") == "Notification" and "Message" in data:
        inner = data["Message"]
        if isinstance(inner, str):
            try:
                inner = json.loads(inner)
            except ValueError:
                raise BadMessage("SNS notification whose Message is not JSON") from None
        event = _parse(inner, depth + 1)
        return RedshiftEvent(event.cluster, event.snapshot, "sns", event.detail)
    if "Type" in data and data.get("Type") != "Notification":
        raise BadMessage(f"SNS message of type {data.get('Type')!r}, not a notification")
    # EventBridge event.
    if "detail-type" in data or "source" in data:
        source = data.get("source")
        if source != "aws.redshift":
            raise BadMessage(f"an event from {source!r}, not aws.redshift")
        detail = data.get("detail")
        if not isinstance(detail, dict):
            raise BadMessage("an aws.redshift event without a detail object")
        what = str(data.get("detail-type") or "")
        return _from_detail(detail, data.get("resources"), "eventbridge", what)
    # Redshift's own event notification (the SNS message body).
    keys = _lower_keys(data)
    if "sourceid" in keys or "eventsource" in keys:
        what = str(keys.get("eventmessage") or keys.get("eventsource") or "")[:200]
        return _from_detail(data, None, "redshift", what)
    raise BadMessage("neither an EventBridge event, an SNS notification nor a Redshift event")


# ------------------------------------------------------------------------------ the poller


class SqsPoller:
    """Long-polls the queue in a thread; each good message calls ``on_event``.

    ``wait_seconds`` (SQS long polling, at most 20) bounds how long a stop waits for the
    poller. A message is deleted once handled; a bad one is deleted too unless
    ``delete_bad`` is false (it then returns after its visibility timeout until the queue's
    redrive policy moves it to the dead-letter queue). No error stops the poller: an SQS
    failure is logged and retried after ``error_backoff`` seconds.
    """

    def __init__(
        self,
        client: Any,
        queue_url: str,
        on_event: Callable[[RedshiftEvent], None],
        log: Any,
        *,
        delete_bad: bool = True,
        wait_seconds: int = 5,
        error_backoff: float = 5.0,
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.on_event = on_event
        self.log = log
        self.delete_bad = delete_bad
        self.wait_seconds = max(0, min(20, wait_seconds))
        self.error_backoff = error_backoff
        self.on_message = on_message  # metrics: called with "ok", "bad" or "error"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _count(self, outcome: str) -> None:
        if self.on_message is not None:
            self.on_message(outcome)

    def poll_once(self) -> int:
        """One ReceiveMessage and the handling of what it returned; returns how many."""
        resp = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self.wait_seconds,
        )
        messages = resp.get("Messages", [])
        for m in messages:
            self._handle(m)
        return len(messages)

    def _handle(self, m: Mapping[str, Any]) -> None:
        mid = m.get("MessageId")
        try:
            event = parse_message(str(m.get("Body", "")))
        except BadMessage as e:
            self._count("bad")
            self.log.warning(
                "bad queue message",
                message_id=mid,
                error=str(e),
                action="deleted" if self.delete_bad else "left for the redrive policy",
            )
            if self.delete_bad:
                self._delete(m)
            return
        self.log.info(
            "redshift event",
            message_id=mid,
            cluster=event.cluster,
            snapshot=event.snapshot,
            via=event.source,
            detail=event.detail,
        )
        try:
            self.on_event(event)
        except Exception as e:  # leave it: it comes back after its visibility timeout
            self._count("error")
            self.log.error("event not handled", message_id=mid, error=str(e))
            return
        self._count("ok")
        self._delete(m)

    def _delete(self, m: Mapping[str, Any]) -> None:
        try:
            self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        except Exception as e:
            self.log.warning("could not delete queue message", error=str(e))

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as e:
                self._count("error")
                self.log.error("queue receive failed", queue=self.queue_url, error=str(e))
                self._stop.wait(self.error_backoff)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="snapworker-sqs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the poller to stop and wait for it (at most one long poll)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.wait_seconds + 5 if timeout is None else timeout)
            self._thread = None
