"""The demo's Kinesis consumer handler: an SNS alert for every clickstream ``purchase``
event, as a Lambda function on the stream would send one.

    streamlake consume clickstream --handler connectors.kinesis.purchase_alerts:on_purchase
"""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from typing import Any

from connectors.aws import AwsEndpoint
from connectors.kinesis.kcl import ConsumerContext, KinesisRecord
from connectors.sns import topic_arn
from streamlake.errors import ResourceError

log = logging.getLogger(__name__)

EVENT = "purchase"


@cache
def _sns(aws: AwsEndpoint) -> Any:
    return aws.client("sns")


@cache
def _topic_arn(aws: AwsEndpoint, topic: str) -> str:
    arn = topic if topic.startswith("arn:") else topic_arn(_sns(aws), topic)
    if arn is None:
        raise ResourceError(f"SNS topic {topic} does not exist", "run local up")
    return arn


def on_purchase(record: KinesisRecord, context: ConsumerContext) -> None:
    """Publishes ``{"event_id", "customer_id", "ts", ...}`` with the attributes event
    ``purchase``, job (the consumer), table (the stream) and severity ``info``. Records
    that are not JSON objects or have no event id are skipped: the lake's processed layer
    quarantines them."""
    if context.topic is None:
        raise ResourceError("the pipeline declares no notifications topic to alert on")
    try:
        event = json.loads(record.data)
    except ValueError:
        log.info("skipping %s %s: not JSON", record.shard_id, record.sequence_number)
        return
    if not isinstance(event, dict) or event.get("event_type") != EVENT:
        return
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        log.info("skipping %s %s: no event id", record.shard_id, record.sequence_number)
        return
    _sns(context.aws).publish(
        TopicArn=_topic_arn(context.aws, context.topic),
        # SNS takes printable ASCII subjects of up to 100 characters.
        Subject=re.sub(r"[^ -~]", "?", f"purchase {event_id}")[:100],
        Message=json.dumps({**event, "shard": record.shard_id, "sequence": record.sequence_number}),
        MessageAttributes={
            name: {"DataType": "String", "StringValue": value}
            for name, value in {
                "event": EVENT,
                "job": context.application,
                "table": context.stream,
                "severity": "info",
            }.items()
        },
    )
