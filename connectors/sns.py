"""Amazon SNS topics, where alerts and notifications are published."""

from __future__ import annotations

import json
import logging
from typing import Any

from connectors.aws import AwsEndpoint
from streamlake.background import BackgroundSender
from streamlake.config.pipeline import Notifications
from streamlake.errors import ResourceError
from streamlake.notifications import EVENTS, Event, Notification, Notifier

log = logging.getLogger(__name__)


def topic_arn(sns: Any, name: str) -> str | None:
    paginator = sns.get_paginator("list_topics")
    for page in paginator.paginate():
        for topic in page.get("Topics", []):
            arn: str = topic["TopicArn"]
            if arn.rsplit(":", 1)[-1] == name:
                return arn
    return None


def topic_exists(sns: Any, name: str) -> bool:
    return topic_arn(sns, name) is not None


def ensure_topic(sns: Any, name: str) -> bool:
    """Create the topic if it does not exist; True if created (CreateTopic is idempotent)."""
    existed = topic_exists(sns, name)
    sns.create_topic(Name=name)
    return not existed


class SnsNotifier(Notifier):
    """Publishes notifications to one SNS topic from a background thread, with the event,
    job, table and severity as message attributes. At most once: a publish that failed is
    logged and counted, not retried past botocore's own retries (kept short, so that a
    queue behind an unreachable SNS drains within ``close``'s wait; what is still queued
    then counts as not sent)."""

    def __init__(self, sns: Any, topic: str, events: frozenset[Event] = frozenset(EVENTS)) -> None:
        super().__init__(events)
        self.sns = sns
        self.topic = topic
        self._arn: str | None = topic if topic.startswith("arn:") else None
        self._sender = BackgroundSender[Notification]("sns-notifier", self._publish_all)

    def submit(self, notification: Notification) -> None:
        self._sender.put(notification)

    def _publish_all(self, notifications: list[Notification]) -> None:
        for notification in notifications:
            self.attempt(notification)

    def deliver(self, notification: Notification) -> None:
        if self._arn is None:
            arn = topic_arn(self.sns, self.topic)
            if arn is None:
                raise ResourceError(f"SNS topic {self.topic} does not exist", "run local up")
            self._arn = arn
        self.sns.publish(
            TopicArn=self._arn,
            Subject=notification.subject,
            Message=json.dumps(notification.as_dict()),
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in notification.attributes().items()
            },
        )

    def close(self, timeout_s: float = 10.0) -> None:
        unsent = len(self._sender.close(timeout_s))
        if unsent:
            self.failed += unsent
            log.warning("%s notifications still queued after %.0fs: not sent", unsent, timeout_s)


def notifier_for(notifications: Notifications, endpoint: AwsEndpoint) -> Notifier:
    """The pipeline's notifier: SNS when a topic is configured, else one that sends none."""
    events = frozenset(notifications.events)
    if notifications.topic is None:
        return Notifier(events)
    # A short timeout and two attempts: an unreachable SNS costs the background thread
    # seconds, not minutes.
    sns = endpoint.client("sns", connect_timeout=2, retries=2, read_timeout=5)
    return SnsNotifier(sns, notifications.topic, events)


def subscribe_queue(
    endpoint: AwsEndpoint, topic: str, queue: str, filter_policy: dict[str, Any] | None = None
) -> str:
    """Subscribe SQS queue ``queue`` (created if missing) to SNS topic ``topic`` with raw
    delivery, so each message arrives as published with its attributes; the queue's URL.
    ``filter_policy`` filters on the message attributes, as a subscriber would."""
    sns, sqs = endpoint.client("sns"), endpoint.client("sqs")
    arn = topic if topic.startswith("arn:") else topic_arn(sns, topic)
    if arn is None:
        raise ResourceError(f"SNS topic {topic} does not exist", "run local up")
    url: str = sqs.create_queue(QueueName=queue)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    attributes = {"RawMessageDelivery": "true"}
    if filter_policy is not None:
        attributes["FilterPolicy"] = json.dumps(filter_policy)
    sns.subscribe(
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )
    return url


def received_notifications(
    endpoint: AwsEndpoint, queue_url: str, wait_s: int = 0
) -> list[dict[str, Any]]:
    """The notifications waiting in the queue (taken off it), each as ``attributes`` (the
    message attributes subscribers filter on) and ``message`` (the published JSON). With
    ``wait_s``, an empty queue is long-polled that long for a first message."""
    sqs = endpoint.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0 if found else wait_s,
        )
        messages = answer.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            attributes = message.get("MessageAttributes", {})
            found.append(
                {
                    "attributes": {k: v["StringValue"] for k, v in attributes.items()},
                    "message": json.loads(message["Body"]),
                }
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
