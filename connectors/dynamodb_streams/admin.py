"""DynamoDB table administration: tables are created with their stream enabled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TableSpec:
    name: str
    hash_key: str
    hash_key_type: str = "S"
    range_key: str | None = None
    range_key_type: str = "S"
    stream_view: str = "NEW_AND_OLD_IMAGES"


def describe_table(dynamodb: Any, name: str) -> dict[str, Any] | None:
    try:
        table: dict[str, Any] = dynamodb.describe_table(TableName=name)["Table"]
        return table
    except dynamodb.exceptions.ResourceNotFoundException:
        return None


def ensure_table(dynamodb: Any, spec: TableSpec) -> bool:
    """Create the table with its stream, or enable the stream on an existing table.

    Returns True if anything was created or changed."""
    stream = {"StreamEnabled": True, "StreamViewType": spec.stream_view}
    table = describe_table(dynamodb, spec.name)
    if table is None:
        keys = [{"AttributeName": spec.hash_key, "KeyType": "HASH"}]
        attributes = [{"AttributeName": spec.hash_key, "AttributeType": spec.hash_key_type}]
        if spec.range_key:
            keys.append({"AttributeName": spec.range_key, "KeyType": "RANGE"})
            attributes.append(
                {"AttributeName": spec.range_key, "AttributeType": spec.range_key_type}
            )
        dynamodb.create_table(
            TableName=spec.name,
            KeySchema=keys,
            AttributeDefinitions=attributes,
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=stream,
        )
        dynamodb.get_waiter("table_exists").wait(
            TableName=spec.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        return True
    if not table.get("StreamSpecification", {}).get("StreamEnabled"):
        dynamodb.update_table(TableName=spec.name, StreamSpecification=stream)
        return True
    return False


def has_stream(dynamodb: Any, name: str) -> bool:
    """True when the table exists with its change stream enabled."""
    return (describe_table(dynamodb, name) or {}).get("LatestStreamArn") is not None
