"""A Kinesis producer on PutRecords, retrying only the entries that failed.

Delivery: at-least-once. PutRecords is not idempotent: an entry whose answer was lost may
be written twice; downstream deduplication by event id removes such copies.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from streamlake.errors import StreamlakeError

log = logging.getLogger(__name__)

MAX_ENTRIES = 500
MAX_REQUEST_BYTES = 5 * 1024 * 1024


class KinesisRecordProducer:
    def __init__(self, kinesis: Any, stream: str, max_attempts: int = 10) -> None:
        self.kinesis = kinesis
        self.stream = stream
        self.max_attempts = max_attempts
        self.sent = 0
        self.acked = 0
        self.retried = 0
        self._pending: list[dict[str, Any]] = []
        self._pending_bytes = 0

    def send(self, partition_key: str, data: bytes) -> None:
        size = len(data) + len(partition_key.encode())
        if len(self._pending) >= MAX_ENTRIES or self._pending_bytes + size > MAX_REQUEST_BYTES:
            self.flush()
        self._pending.append({"Data": data, "PartitionKey": partition_key})
        self._pending_bytes += size
        self.sent += 1

    def flush(self) -> None:
        if self._pending:
            self._put(self._pending)
            self._pending, self._pending_bytes = [], 0

    def close(self) -> None:
        self.flush()

    def _put(self, entries: list[dict[str, Any]]) -> None:
        delay = 0.05
        for attempt in range(1, self.max_attempts + 1):
            try:
                answer = self.kinesis.put_records(StreamName=self.stream, Records=entries)
            except self.kinesis.exceptions.ProvisionedThroughputExceededException:
                answer = {"FailedRecordCount": len(entries), "Records": [{}] * len(entries)}
            failed = [
                e
                for e, r in zip(entries, answer["Records"], strict=True)
                if "ErrorCode" in r or "SequenceNumber" not in r
            ]
            self.acked += len(entries) - len(failed)
            if not failed:
                return
            self.retried += len(failed)
            log.debug(
                "retrying %s of %s Kinesis entries (attempt %s)", len(failed), len(entries), attempt
            )
            entries = failed
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise StreamlakeError(
            f"{len(entries)} records to Kinesis stream {self.stream} still failed after "
            f"{self.max_attempts} attempts",
            "the stream is throttling: add shards or lower --rate",
            retryable=True,
        )
