"""Amazon Data Firehose delivery streams to S3."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from streamlake.errors import ExportError

log = logging.getLogger(__name__)


def delivery_stream_exists(firehose: Any, name: str) -> bool:
    try:
        firehose.describe_delivery_stream(DeliveryStreamName=name)
        return True
    except firehose.exceptions.ResourceNotFoundException:
        return False


def ensure_delivery_stream(
    firehose: Any, name: str, bucket: str, prefix: str, role_arn: str
) -> bool:
    """Create a DirectPut stream delivering to ``s3://bucket/prefix``; True if created."""
    if delivery_stream_exists(firehose, name):
        return False
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": role_arn,
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": prefix,
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
        },
    )
    return True


# Firehose's limits on one PutRecordBatch call and on one record.
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024
# Errors worth another attempt: throttling, a service that is down for a moment.
RETRYABLE = frozenset(
    {
        "ServiceUnavailableException",
        "ThrottlingException",
        "LimitExceededException",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
    }
)

# The longest pause between two calls of one batch, however many attempts are allowed.
MAX_BACKOFF_S = 20.0

Record = tuple[int, bytes]


def batches(records: list[Record]) -> Iterator[list[Record]]:
    """``records`` in order, cut into PutRecordBatch calls within Firehose's limits."""
    batch: list[Record] = []
    size = 0
    for record in records:
        if batch and (len(batch) == MAX_BATCH_RECORDS or size + len(record[1]) > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += len(record[1])
    if batch:
        yield batch


@dataclass
class FirehoseSender:
    """Puts records on one delivery stream. Delivery is at least once: a record is
    reported acknowledged only after Firehose answered for it, and a call whose answer was
    lost (a timeout, a crash) is sent again by the caller. Partial failures
    (``FailedPutCount``), throttling and service errors are retried, failed records only,
    up to ``max_attempts`` calls per batch, sleeping before retry n ``backoff_s * 2**(n-1)``
    (at most MAX_BACKOFF_S) times a random factor (full jitter).

    A call that timed out or failed with a 5xx may have been delivered all the same: its
    records are sent again in the same run, with the same ``_export_id``."""

    firehose: Any
    stream: str
    max_attempts: int = 6
    backoff_s: float = 0.2
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def put(
        self, batch: list[Record], on_acked: Callable[[list[int]], None]
    ) -> tuple[list[int], str]:
        """Send ``batch``; ``on_acked`` is called with the ordinals acknowledged after each
        call. Returns the ordinals still unacknowledged when the attempts ran out (empty:
        all delivered) and the last error; raises ExportError at once for an error no retry
        can mend (no such stream, no access)."""
        pending = list(batch)
        last_error = ""
        for attempt in range(self.max_attempts):
            if attempt:
                delay = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1))
                self.sleep(delay * self.jitter())
            acked, pending, last_error = self._call(pending)
            if acked:
                on_acked(acked)
            if not pending:
                return [], ""
            log.info(
                "firehose %s: %s of %s records not accepted (%s), attempt %s of %s",
                self.stream,
                len(pending),
                len(batch),
                last_error,
                attempt + 1,
                self.max_attempts,
            )
        return [ordinal for ordinal, _data in pending], last_error

    def _call(self, records: list[Record]) -> tuple[list[int], list[Record], str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.firehose.put_record_batch(
                DeliveryStreamName=self.stream, Records=[{"Data": data} for _o, data in records]
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code not in RETRYABLE and status < 500:
                raise ExportError(
                    f"firehose {self.stream} refused the records: {code}: {exc}",
                    "check the delivery stream and the credentials' firehose:PutRecordBatch",
                    stream=self.stream,
                ) from exc
            return [], records, code or f"HTTP {status}"
        except BotoCoreError as exc:
            return [], records, type(exc).__name__
        acked, failed, codes = [], [], set()
        for record, response in zip(records, answer["RequestResponses"], strict=True):
            if response.get("ErrorCode"):
                failed.append(record)
                codes.add(response["ErrorCode"])
            else:
                acked.append(record[0])
        return acked, failed, ", ".join(sorted(codes))
