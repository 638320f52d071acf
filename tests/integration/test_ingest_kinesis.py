"""Kinesis to raw through the Python data source: records from an independent boto3 writer
arrive once with their coordinates; KPL aggregates become user records; a shard split while
the job runs loses and repeats nothing; SIGKILL and restart write every record once."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator

from connectors.aws import aws_endpoint
from connectors.kinesis.admin import ensure_stream
from streamlake.local.moto_server import TRIM_TAG
from tests.support import (
    cli_job,
    committed_batches,
    coordinates,
    kill_at_random_points,
    kill_hard,
    one_source_pipeline,
    poll,
    raw_rows,
    run_in_process,
    wait_for_next_commit,
    with_lake,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def new_stream(kinesis: Any, shards: int) -> str:
    name = f"s-{uuid.uuid4().hex[:10]}"
    ensure_stream(kinesis, name, shards)
    return name


def put(kinesis: Any, stream: str, start: int, count: int) -> dict[int, str]:
    """PutRecords with the plain boto3 client; returns record number -> sequence number."""
    written: dict[int, str] = {}
    for batch_start in range(start, start + count, 100):
        numbers = list(range(batch_start, min(batch_start + 100, start + count)))
        entries = [
            {"Data": json.dumps({"n": n}).encode(), "PartitionKey": f"key-{n}"} for n in numbers
        ]
        answer = kinesis.put_records(StreamName=stream, Records=entries)
        assert answer["FailedRecordCount"] == 0
        written.update(
            {n: r["SequenceNumber"] for n, r in zip(numbers, answer["Records"], strict=True)}
        )
    return written


def numbers_of(rows: list[dict[str, Any]]) -> list[int]:
    return sorted(json.loads(r["payload"])["n"] for r in rows)


def test_every_record_arrives_once_with_coordinates(
    spark: Any, settings: Any, tmp_path: Path
) -> None:
    kinesis = aws_endpoint(settings).client("kinesis")
    stream = new_stream(kinesis, 2)
    written = put(kinesis, stream, 0, 300)
    pipeline = one_source_pipeline({"kind": "kinesis", "stream": stream, "shards": 2})
    local = with_lake(settings, tmp_path)

    run_in_process(spark, local, pipeline)
    written.update(put(kinesis, stream, 300, 200))
    run_in_process(spark, local, pipeline)

    rows = raw_rows(local)
    assert numbers_of(rows) == list(range(500))
    keys = coordinates(rows)
    assert len(set(keys)) == 500
    by_number = {json.loads(r["payload"])["n"]: r for r in rows}
    for n in (0, 299, 300, 499):
        row = by_number[n]
        assert (row["source"], row["stream"]) == ("kinesis", stream)
        assert row["position"] == written[n]
        assert row["key"] == f"key-{n}"
        assert row["partition"].startswith("shardId-")
        assert abs(row["event_ts"].timestamp() - time.time()) < 600


def test_kpl_aggregated_records_come_out_as_user_records(
    spark: Any, settings: Any, tmp_path: Path
) -> None:
    kinesis = aws_endpoint(settings).client("kinesis")
    stream = new_stream(kinesis, 1)
    aggregator = RecordAggregator()
    for n in range(7):
        aggregator.add_user_record(f"user-key-{n}", json.dumps({"n": n}).encode())
    partition_key, _hash_key, data = aggregator.clear_and_get().get_contents()
    sequence = kinesis.put_record(StreamName=stream, Data=data, PartitionKey=partition_key)[
        "SequenceNumber"
    ]
    plain = kinesis.put_record(StreamName=stream, Data=b'{"n": 7}', PartitionKey="plain")
    local = with_lake(settings, tmp_path)
    run_in_process(spark, local, one_source_pipeline({"kind": "kinesis", "stream": stream}))

    rows = sorted(raw_rows(local), key=lambda r: json.loads(r["payload"])["n"])
    assert [json.loads(r["payload"])["n"] for r in rows] == list(range(8))
    assert [r["position"] for r in rows[:7]] == [f"{sequence}:{i}" for i in range(7)]
    assert [r["key"] for r in rows[:7]] == [f"user-key-{i}" for i in range(7)]
    assert rows[7]["position"] == plain["SequenceNumber"]


def test_shard_split_during_ingestion_loses_and_repeats_nothing(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    kinesis = aws_endpoint(settings).client("kinesis")
    stream = new_stream(kinesis, 1)
    pipeline = one_source_pipeline({"kind": "kinesis", "stream": stream, "shards": 1})
    job = cli_job(tmp_path, stack_env, pipeline)
    put(kinesis, stream, 0, 200)
    process = job.start("--until-idle", "8")
    try:
        poll(lambda: committed_batches(job.checkpoint) >= 1, 120, "the first batch")
        put(kinesis, stream, 200, 200)
        parent = kinesis.list_shards(StreamName=stream)["Shards"][0]
        middle = 2**127
        kinesis.split_shard(
            StreamName=stream, ShardToSplit=parent["ShardId"], NewStartingHashKey=str(middle)
        )
        put(kinesis, stream, 400, 400)
        assert process.wait(timeout=300) == 0, job.log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            kill_hard(process)
    rows = raw_rows(with_lake(settings, tmp_path))
    assert numbers_of(rows) == list(range(800))
    assert len(set(coordinates(rows))) == 800
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    children = {s["ShardId"] for s in shards if s.get("ParentShardId") == parent["ShardId"]}
    assert len(children) == 2
    parent_rows = [r for r in rows if r["partition"] == parent["ShardId"]]
    child_rows = [r for r in rows if r["partition"] in children]
    assert len(parent_rows) == 400 and len(child_rows) == 400
    assert max(r["ingest_ts"] for r in parent_rows) <= min(r["ingest_ts"] for r in child_rows)


@pytest.mark.soak
def test_shard_merge_during_ingestion_loses_and_repeats_nothing(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    kinesis = aws_endpoint(settings).client("kinesis")
    stream = new_stream(kinesis, 2)
    pipeline = one_source_pipeline({"kind": "kinesis", "stream": stream, "shards": 2})
    job = cli_job(tmp_path, stack_env, pipeline)
    put(kinesis, stream, 0, 200)
    process = job.start("--until-idle", "8")
    try:
        poll(lambda: committed_batches(job.checkpoint) >= 1, 120, "the first batch")
        put(kinesis, stream, 200, 100)
        left, right = sorted(
            kinesis.list_shards(StreamName=stream)["Shards"],
            key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
        )
        kinesis.merge_shards(
            StreamName=stream,
            ShardToMerge=left["ShardId"],
            AdjacentShardToMerge=right["ShardId"],
        )
        put(kinesis, stream, 300, 300)
        assert process.wait(timeout=300) == 0, job.log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            kill_hard(process)
    rows = raw_rows(with_lake(settings, tmp_path))
    assert numbers_of(rows) == list(range(600))
    assert len(set(coordinates(rows))) == 600
    parents = {left["ShardId"], right["ShardId"]}
    merged = [
        s["ShardId"]
        for s in kinesis.list_shards(StreamName=stream)["Shards"]
        if s.get("ParentShardId") in parents and s.get("AdjacentParentShardId") in parents
    ]
    assert len(merged) == 1
    parent_rows = [r for r in rows if r["partition"] in parents]
    child_rows = [r for r in rows if r["partition"] == merged[0]]
    assert len(parent_rows) == 300 and len(child_rows) == 300
    assert max(r["ingest_ts"] for r in parent_rows) <= min(r["ingest_ts"] for r in child_rows)


# In `make soak`; `make test` kills every job at random in tests/e2e/test_chaos.py.
@pytest.mark.soak
def test_sigkill_at_random_points_then_restart_writes_every_record_once(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    kinesis = aws_endpoint(settings).client("kinesis")
    stream = new_stream(kinesis, 2)
    pipeline = one_source_pipeline({"kind": "kinesis", "stream": stream, "shards": 2})
    job = cli_job(tmp_path, stack_env, pipeline)
    flowing = threading.Event()
    written: dict[int, str] = {}

    def keep_writing() -> None:
        n = 0
        while not flowing.is_set():
            written.update(put(kinesis, stream, n, 50))
            n += 50
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
    assert len(coordinates(rows)) == len(set(coordinates(rows))), "a record was written twice"
    assert numbers_of(rows) == sorted(written)


def test_available_now_after_a_kill_reads_everything_there_at_start(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    """Spark gives a Python source no available-now contract of its own; after a kill the
    restarted run must still read everything written before it started, not only replay
    the batch the kill cut short."""
    kinesis = aws_endpoint(settings).client("kinesis")
    stream = new_stream(kinesis, 2)
    source = {"kind": "kinesis", "stream": stream, "shards": 2, "max_records_per_trigger": 40}
    pipeline = one_source_pipeline(source)
    job = cli_job(tmp_path, stack_env, pipeline)
    put(kinesis, stream, 0, 240)
    process = job.start()
    try:
        wait_for_next_commit(job.checkpoint)
    finally:
        kill_hard(process)
    # As if killed between the last batch's Delta commit and Spark's commit log, before the
    # next batch was planned: the restart replays that batch.
    last = max(int(p.name) for p in (job.checkpoint / "commits").iterdir() if p.name.isdigit())
    for name in (str(last), f".{last}.crc"):
        (job.checkpoint / "commits" / name).unlink(missing_ok=True)
    for planned in (job.checkpoint / "offsets").iterdir():
        if (
            planned.name.strip(".").split(".")[0].isdigit()
            and int(planned.name.strip(".").split(".")[0]) > last
        ):
            planned.unlink()
    put(kinesis, stream, 240, 80)

    final = job.run("--available-now")

    assert final.returncode == 0, final.stderr[-3000:]
    rows = raw_rows(with_lake(settings, tmp_path))
    assert numbers_of(rows) == list(range(320))


def trim_before_now(kinesis: Any, stream: str) -> None:
    """Retention, on demand: the local AWS server drops every record that arrived so far
    (AWS keeps records 24 hours at least, which no test can wait for)."""
    now_ms = str(int(time.time() * 1000) + 1)
    kinesis.add_tags_to_stream(StreamName=stream, Tags={TRIM_TAG: now_ms})


# In `make soak`: the suite's time budget; a close equivalent stays in `make test`.
@pytest.mark.soak
def test_a_quiet_shard_trimmed_past_what_was_read_goes_on_after_a_restart(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    """The job read the shard to its end, then retention took those records while nothing
    new came: the next run tells that from a loss and reads the new records."""
    kinesis = aws_endpoint(settings).client("kinesis")
    stream = new_stream(kinesis, 1)
    job = cli_job(tmp_path, stack_env, one_source_pipeline({"kind": "kinesis", "stream": stream}))
    put(kinesis, stream, 0, 100)
    assert job.run("--available-now").returncode == 0
    trim_before_now(kinesis, stream)
    oldest = kinesis.get_records(
        ShardIterator=kinesis.get_shard_iterator(
            StreamName=stream, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    )["Records"]
    assert oldest == []  # the local server did trim
    put(kinesis, stream, 100, 50)

    second = job.run("--available-now")

    assert second.returncode == 0, second.stderr[-3000:]
    assert numbers_of(raw_rows(with_lake(settings, tmp_path))) == list(range(150))


def test_unread_records_trimmed_stop_the_job_until_the_gap_is_accepted(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    """Killed with a backlog, the job comes back after retention took unread records: it
    stops naming the gap, and a rerun that accepts that gap goes on past it, once."""
    kinesis = aws_endpoint(settings).client("kinesis")
    stream = new_stream(kinesis, 1)
    source = {"kind": "kinesis", "stream": stream, "max_records_per_trigger": 20}
    job = cli_job(tmp_path, stack_env, one_source_pipeline(source))
    first_half = put(kinesis, stream, 0, 200)
    process = job.start()
    try:
        wait_for_next_commit(job.checkpoint)
    finally:
        kill_hard(process)
    trim_before_now(kinesis, stream)  # records 0..199 are gone, most of them unread
    put(kinesis, stream, 200, 60)

    stopped = job.run("--available-now")

    assert stopped.returncode == 1
    message = stopped.stderr.strip().splitlines()[-1]
    assert f"data lost in {stream} partition shardId-000000000000" in message
    gap = re.search(r"--accept-gap (\S+);", message)
    assert gap is not None, message
    lost_from = int(gap.group(1).rsplit("/", 1)[1].split("..")[0])
    rerun = job.run("--available-now", "--accept-gap", gap.group(1))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rows = raw_rows(with_lake(settings, tmp_path))
    read_before = sorted(n for n, seq in first_half.items() if int(seq) <= lost_from)
    assert numbers_of(rows) == read_before + list(range(200, 260))
    assert 0 < len(read_before) < 200
