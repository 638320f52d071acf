"""FirehoseSender's retry schedule and what it retries, against a scripted client: exact
answer sequences and sleep lengths cannot be had from a live endpoint (the export tests
drive the real local server through the fault proxy)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from connectors.firehose import FirehoseSender
from streamlake.errors import ExportError


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutRecordBatch",
    )


class ScriptedFirehose:
    """Answers each PutRecordBatch with the next of ``answers``: an exception to raise, or
    the set of positions in the call to fail."""

    def __init__(self, *answers: Exception | set[int]) -> None:
        self.answers = list(answers)
        self.calls: list[list[bytes]] = []

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, Any]]) -> Any:  # noqa: N803
        self.calls.append([r["Data"] for r in Records])
        answer = self.answers.pop(0) if self.answers else set()
        if isinstance(answer, Exception):
            raise answer
        return {
            "FailedPutCount": len(answer),
            "RequestResponses": [
                {"ErrorCode": "ServiceUnavailableException"} if i in answer else {"RecordId": "r"}
                for i in range(len(Records))
            ],
        }


def sender(firehose: ScriptedFirehose, sleeps: list[float], **options: Any) -> FirehoseSender:
    return FirehoseSender(firehose, "s", sleep=sleeps.append, jitter=lambda: 1.0, **options)


RECORDS = [(i, f"r{i}".encode()) for i in range(5)]


def test_backoff_doubles_up_to_the_cap_and_giving_up_returns_what_was_not_acked() -> None:
    throttled = client_error("ThrottlingException", 400)
    firehose = ScriptedFirehose(*[throttled] * 6)
    sleeps: list[float] = []
    acked: list[list[int]] = []
    unacked, error = sender(firehose, sleeps, max_attempts=6, backoff_s=4.0).put(
        RECORDS, acked.append
    )
    assert sleeps == [4.0, 8.0, 16.0, 20.0, 20.0]  # 32 capped at MAX_BACKOFF_S
    assert unacked == [0, 1, 2, 3, 4] and error == "ThrottlingException" and acked == []
    assert len(firehose.calls) == 6


def test_jitter_scales_each_sleep() -> None:
    firehose = ScriptedFirehose(client_error("InternalFailure", 500), set())
    sleeps: list[float] = []
    FirehoseSender(firehose, "s", backoff_s=1.0, sleep=sleeps.append, jitter=lambda: 0.25).put(
        RECORDS, lambda _: None
    )
    assert sleeps == [0.25]


def test_a_partial_failure_resends_only_the_failed_records() -> None:
    firehose = ScriptedFirehose({1, 3}, set())
    acked: list[list[int]] = []
    unacked, _ = sender(firehose, [], backoff_s=0.1).put(RECORDS, acked.append)
    assert unacked == [] and acked == [[0, 2, 4], [1, 3]]
    assert firehose.calls[1] == [b"r1", b"r3"]


def test_a_5xx_is_retried_and_a_refusal_stops_at_once() -> None:
    firehose = ScriptedFirehose(client_error("ServiceUnavailableException", 503), set())
    sleeps: list[float] = []
    assert sender(firehose, sleeps).put(RECORDS, lambda _: None) == ([], "")
    assert len(sleeps) == 1

    refused = ScriptedFirehose(client_error("ResourceNotFoundException", 400))
    sleeps = []
    with pytest.raises(ExportError, match="refused the records: ResourceNotFoundException"):
        sender(refused, sleeps).put(RECORDS, lambda _: None)
    assert sleeps == [] and len(refused.calls) == 1
