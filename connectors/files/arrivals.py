"""New files under a landing prefix, as S3 event notifications delivered to an SQS queue:
what starts a workflow ``on_arrival``. The queue and the bucket's notification are made by
`local up` (and by the deployment on AWS); `workflow serve` waits on the queue.

Delivery: at least once, as SQS delivers. A notification is deleted once it is handed
over; the files themselves stay in the landing place until the ingest job reads them, so
a notification lost with a crash only delays the next run to the next arrival.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import unquote_plus

from connectors.aws import AwsEndpoint
from connectors.base import Resource
from connectors.files.landing import s3_parts
from streamlake.config.pipeline import FilesSource

log = logging.getLogger(__name__)

# SQS takes at most 20 s per long poll.
LONGEST_POLL_S = 20


def arrival_queue_name(pipeline: str, source: str) -> str:
    """The queue that hears of a files source's new objects (SQS: 80 characters, letters,
    digits, - and _)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{pipeline}-{source}-arrivals")[:80]


def notification_id(queue: str) -> str:
    return f"streamlake-{queue}"


@dataclass(frozen=True)
class ObjectArrived:
    bucket: str
    key: str


def queue_exists(sqs: Any, name: str) -> bool:
    try:
        sqs.get_queue_url(QueueName=name)
    except sqs.exceptions.QueueDoesNotExist:
        return False
    return True


def ensure_queue(sqs: Any, name: str, bucket: str) -> bool:
    """Create the queue, with the policy that lets the bucket's notifications in."""
    if queue_exists(sqs, name):
        return False
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    return True


def notification_exists(s3: Any, bucket: str, queue: str) -> bool:
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    return any(q.get("Id") == notification_id(queue) for q in config.get("QueueConfigurations", []))


def ensure_notification(s3: Any, sqs: Any, bucket: str, prefix: str, queue: str) -> bool:
    """Send the bucket's new objects under ``prefix`` to the queue, keeping the bucket's
    other notifications."""
    if notification_exists(s3, bucket, queue):
        return False
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    config.pop("ResponseMetadata", None)
    config.setdefault("QueueConfigurations", []).append(
        {
            "Id": notification_id(queue),
            "QueueArn": arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
        }
    )
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    return True


def arrival_resources(source: FilesSource, queue: str, aws: AwsEndpoint) -> list[Resource]:
    """The queue and the bucket notification a workflow started on arrival needs; none for
    a landing place on a local disk (S3 events only come from S3)."""
    parts = s3_parts(source.path)
    if parts is None:
        return []
    bucket, prefix = parts
    sqs, s3 = aws.client("sqs"), aws.client("s3")
    return [
        Resource(
            "sqs queue",
            queue,
            partial(queue_exists, sqs, queue),
            partial(ensure_queue, sqs, queue, bucket),
        ),
        Resource(
            "s3 notification",
            f"s3://{bucket}/{prefix} -> {queue}",
            partial(notification_exists, s3, bucket, queue),
            partial(ensure_notification, s3, sqs, bucket, prefix, queue),
        ),
    ]


class ArrivalQueue:
    """The notifications of one queue."""

    def __init__(self, aws: AwsEndpoint, queue: str) -> None:
        self.sqs = aws.client("sqs", read_timeout=LONGEST_POLL_S + 10)
        self.queue = queue
        self.url: str | None = None

    def exists(self) -> bool:
        return queue_exists(self.sqs, self.queue)

    def wait(self, seconds: float) -> list[ObjectArrived]:
        """The objects notified within ``seconds`` (at most 20: one long poll), deleted
        from the queue as they are handed over."""
        if self.url is None:
            self.url = self.sqs.get_queue_url(QueueName=self.queue)["QueueUrl"]
        answer = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=max(0, min(LONGEST_POLL_S, int(seconds))),
        )
        arrived: list[ObjectArrived] = []
        for message in answer.get("Messages", []):
            arrived += objects_in(message.get("Body", ""))
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return arrived


def objects_in(body: str) -> list[ObjectArrived]:
    """The created objects an S3 event notification names (none for S3's test event)."""
    try:
        event = json.loads(body)
    except ValueError:
        log.warning("an arrival notification that is not JSON was dropped: %.200s", body)
        return []
    found = []
    for record in event.get("Records", []) if isinstance(event, dict) else []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3", {})
        bucket, key = s3.get("bucket", {}).get("name"), s3.get("object", {}).get("key")
        if bucket and key and not key.endswith("/"):  # "/" ends a folder marker
            found.append(ObjectArrived(bucket, unquote_plus(key)))
    return found
