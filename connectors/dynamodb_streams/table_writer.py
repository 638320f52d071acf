"""Writes items to a DynamoDB table, whose change stream the ingest job then reads.

Delivery: each put or delete is one idempotent request, retried by boto3's standard mode.
"""

from __future__ import annotations

from typing import Any


class DynamoDbTableWriter:
    def __init__(self, dynamodb_resource: Any, table: str) -> None:
        self.table = dynamodb_resource.Table(table)
        self.sent = 0
        self.acked = 0

    def put(self, item: dict[str, Any]) -> None:
        self.sent += 1
        self.table.put_item(Item=item)
        self.acked += 1

    def delete(self, key: dict[str, Any]) -> None:
        self.sent += 1
        self.table.delete_item(Key=key)
        self.acked += 1

    def flush(self) -> None:
        """Every request is synchronous; nothing is buffered."""

    def close(self) -> None:
        self.flush()
