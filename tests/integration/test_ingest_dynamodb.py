"""DynamoDB Streams to raw: inserts, updates and deletes made with plain boto3 arrive once,
each as the stream record's JSON with keys, images and sequence number; SIGKILL at random
points and a restart write every change once."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors.aws import aws_endpoint
from connectors.dynamodb_streams.admin import TableSpec, ensure_table
from streaming import runtime
from streaming.ingest import ingest_job
from tests.support import (
    cli_job,
    coordinates,
    kill_at_random_points,
    one_source_pipeline,
    raw_rows,
    with_lake,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def test_changes_arrive_once_as_stream_records(spark: Any, settings: Any, tmp_path: Path) -> None:
    aws = aws_endpoint(settings)
    dynamodb = aws.client("dynamodb")
    table = f"t-{uuid.uuid4().hex[:10]}"
    ensure_table(dynamodb, TableSpec(table, "customer_id"))
    for n in range(30):
        dynamodb.put_item(
            TableName=table, Item={"customer_id": {"S": f"c{n}"}, "tier": {"S": "bronze"}}
        )
    for n in range(10):
        dynamodb.update_item(
            TableName=table,
            Key={"customer_id": {"S": f"c{n}"}},
            UpdateExpression="SET tier = :t",
            ExpressionAttributeValues={":t": {"S": "gold"}},
        )
    for n in range(25, 30):
        dynamodb.delete_item(TableName=table, Key={"customer_id": {"S": f"c{n}"}})

    pipeline = one_source_pipeline({"kind": "dynamodb", "table": table, "hash_key": "customer_id"})
    local = with_lake(settings, tmp_path)
    job = ingest_job(spark, "ingest-events", pipeline, local, aws, True)
    runtime.run([job], runtime.RunMode(available_now=True), runtime.StopSignal())

    rows = raw_rows(local)
    assert len(rows) == 45
    assert len(set(coordinates(rows))) == 45
    records = [json.loads(r["payload"]) for r in rows]
    names = sorted(r["event_name"] for r in records)
    assert names == ["INSERT"] * 30 + ["MODIFY"] * 10 + ["REMOVE"] * 5
    modify = next(
        r
        for r in records
        if r["event_name"] == "MODIFY" and r["keys"]["customer_id"] == {"S": "c3"}
    )
    assert modify["old_image"]["tier"] == {"S": "bronze"}
    assert modify["new_image"]["tier"] == {"S": "gold"}
    removed = [r for r in records if r["event_name"] == "REMOVE"]
    assert sorted(r["keys"]["customer_id"]["S"] for r in removed) == [
        f"c{n}" for n in range(25, 30)
    ]
    for row, record in zip(rows, records, strict=True):
        assert row["source"] == "dynamodb" and row["stream"] == table
        assert row["position"] == record["sequence_number"]
        assert row["key"] == record["keys"]["customer_id"]["S"]
        assert row["event_ts"] is not None


@pytest.mark.soak
def test_sigkill_at_random_points_then_restart_writes_every_change_once(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    dynamodb = aws_endpoint(settings).client("dynamodb")
    table = f"t-{uuid.uuid4().hex[:10]}"
    ensure_table(dynamodb, TableSpec(table, "customer_id"))
    pipeline = one_source_pipeline({"kind": "dynamodb", "table": table, "hash_key": "customer_id"})
    job = cli_job(tmp_path, stack_env, pipeline)
    flowing = threading.Event()
    written: list[int] = []

    def keep_writing() -> None:
        while not flowing.is_set():
            for _ in range(10):
                n = len(written)
                item = {"customer_id": {"S": f"c{n}"}, "n": {"N": str(n)}}
                dynamodb.put_item(TableName=table, Item=item)
                written.append(n)
            flowing.wait(0.1)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        kill_at_random_points(job, rounds=2)
    finally:
        flowing.set()
        writer.join()
    final = job.start("--until-idle", "6")
    assert final.wait(timeout=300) == 0, job.log.read_text()[-3000:]
    rows = raw_rows(with_lake(settings, tmp_path))
    assert len(coordinates(rows)) == len(set(coordinates(rows))), "a change was written twice"
    numbers = sorted(int(json.loads(r["payload"])["new_image"]["n"]["N"]) for r in rows)
    assert numbers == written
