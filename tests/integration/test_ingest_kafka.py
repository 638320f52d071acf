"""Kafka to raw: every record once, with its coordinates; exactly-once across SIGKILL;
retention that deletes unread data stops the job; SIGTERM stops at a batch boundary."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from streaming.checkpoint_guard import JobLedger, disagreement
from streamlake.lake.checkpoint import CheckpointFiles
from streamlake.lake.delta_rs import last_transaction_version
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
    with_lake,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def new_topic(bootstrap: str, partitions: int = 3, **config: str) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, partitions, 1, topic_configs=config)])
    admin.close()
    return name


def produce(bootstrap: str, topic: str, count: int, start: int = 0) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(start, start + count):
        producer.send(topic, key=f"k{i % 17}".encode(), value=f'{{"n": {i}}}'.encode())
    producer.flush()
    producer.close()


def produce_until(bootstrap: str, topic: str, stop: threading.Event) -> None:
    """Keeps data flowing, in small paced bursts, until ``stop`` is set."""
    start = 0
    while not stop.is_set():
        produce(bootstrap, topic, 20, start)
        start += 20
        stop.wait(0.1)


def end_offsets(bootstrap: str, topic: str) -> dict[str, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    ends = consumer.end_offsets(partitions)
    consumer.close()
    return {str(tp.partition): offset for tp, offset in ends.items()}


def assert_exactly_the_topic(rows: list[dict[str, Any]], bootstrap: str, topic: str) -> None:
    keys = coordinates(rows)
    assert len(keys) == len(set(keys)), "a record was written twice"
    expected = {
        ("kafka", topic, partition, str(offset))
        for partition, end in end_offsets(bootstrap, topic).items()
        for offset in range(end)
    }
    assert set(keys) == expected


def test_every_record_arrives_once_with_coordinates(
    spark: Any, settings: Any, tmp_path: Path
) -> None:
    bootstrap = settings.bootstrap_servers
    topic = new_topic(bootstrap)
    before = time.time()
    produce(bootstrap, topic, 500)
    pipeline = one_source_pipeline({"kind": "kafka", "topic": topic, "partitions": 3})
    local = with_lake(settings, tmp_path)

    run_in_process(spark, local, pipeline)
    produce(bootstrap, topic, 250, start=500)
    run_in_process(spark, local, pipeline)

    rows = raw_rows(local)
    assert len(rows) == 750
    assert_exactly_the_topic(rows, bootstrap, topic)
    payloads = sorted(int(r["payload"].decode()[6:-1]) for r in rows)
    assert payloads == list(range(750))
    first = next(r for r in rows if r["payload"] == b'{"n": 0}')
    assert first["key"] == "k0"
    assert before - 5 <= first["event_ts"].timestamp() <= time.time()
    assert first["ingest_ts"] >= first["event_ts"]
    assert first["ingest_date"] == first["ingest_ts"].date()


# In `make soak`; `make test` kills every job at random in tests/e2e/test_chaos.py.
@pytest.mark.soak
def test_sigkill_at_random_points_then_restart_writes_every_record_once(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    bootstrap = settings.bootstrap_servers
    topic = new_topic(bootstrap)
    pipeline = one_source_pipeline({"kind": "kafka", "topic": topic, "partitions": 3})
    job = cli_job(tmp_path, stack_env, pipeline)
    # Data flows until the last kill, so every round has a batch to commit and cut through.
    flowing = threading.Event()
    producer = threading.Thread(target=produce_until, args=(bootstrap, topic, flowing))
    producer.start()
    try:
        kill_at_random_points(job)
    finally:
        flowing.set()
        producer.join()
    final = job.start("--until-idle", "6")
    assert final.wait(timeout=300) == 0, job.log.read_text()[-3000:]
    settings_here = with_lake(settings, tmp_path)
    assert_exactly_the_topic(raw_rows(settings_here), bootstrap, topic)


# In `make soak`: the suite's time budget; a close equivalent stays in `make test`.
@pytest.mark.soak
def test_restart_replaying_a_batch_written_but_not_committed_goes_on(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    """A crash between the Delta commit and Spark's commit log, made deterministic: the last
    commit-log entry is removed, so the next start replays that batch from the offset log.
    Spark 4.1's Kafka source then fails reporting the batch's metrics (SPARK-55271); the
    runtime restarts the query once and the job goes on, writing nothing twice."""
    bootstrap = settings.bootstrap_servers
    topic = new_topic(bootstrap)
    pipeline = one_source_pipeline({"kind": "kafka", "topic": topic, "partitions": 3})
    job = cli_job(tmp_path, stack_env, pipeline)
    produce(bootstrap, topic, 300)
    first = job.run("--available-now")
    assert first.returncode == 0, first.stderr
    last = max(int(p.name) for p in (job.checkpoint / "commits").iterdir() if p.name.isdigit())
    for name in (str(last), f".{last}.crc"):  # the entry and its checksum, as if never written
        (job.checkpoint / "commits" / name).unlink()
    produce(bootstrap, topic, 200, start=300)

    second = job.run("--available-now")

    assert second.returncode == 0, second.stderr[-3000:]
    assert "SPARK-55271" in second.stderr and "restarting it from its checkpoint" in second.stderr
    assert committed_batches(job.checkpoint) > last + 1
    assert_exactly_the_topic(raw_rows(with_lake(settings, tmp_path)), bootstrap, topic)


# In `make soak`, for the suite's time budget: test_process_restart's checkpoint restored
# from an older copy goes through the same stop-then-recover-from-the-table path.
@pytest.mark.soak
def test_a_checkpoint_that_lost_its_metadata_stops_then_recovers_from_the_table(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    """Without its metadata the restarted query would get a new id and write its last batch
    again; the job refuses, and --recover from-table resumes after the table's last batch."""
    bootstrap = settings.bootstrap_servers
    topic = new_topic(bootstrap)
    pipeline = one_source_pipeline({"kind": "kafka", "topic": topic, "partitions": 3})
    job = cli_job(tmp_path, stack_env, pipeline)
    produce(bootstrap, topic, 300)
    assert job.run("--available-now").returncode == 0
    (job.checkpoint / "metadata").unlink()
    produce(bootstrap, topic, 200, start=300)

    refused = job.run("--available-now")

    assert refused.returncode == 1
    message = refused.stderr.strip().splitlines()[-1]
    assert "lost its metadata" in message and "--recover from-table" in message
    assert len(raw_rows(with_lake(settings, tmp_path))) == 300
    recovered = job.run("--available-now", "--recover", "from-table")
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert list(tmp_path.glob("checkpoints/ingest-events.replaced-*/offsets"))
    assert_exactly_the_topic(raw_rows(with_lake(settings, tmp_path)), bootstrap, topic)


def test_retention_deleting_unread_data_stops_with_the_lost_range(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    bootstrap = settings.bootstrap_servers
    topic = new_topic(bootstrap, partitions=1, **{"retention.ms": "1000", "segment.ms": "200"})
    pipeline = one_source_pipeline({"kind": "kafka", "topic": topic, "partitions": 1})
    job = cli_job(tmp_path, stack_env, pipeline)
    produce(bootstrap, topic, 100)
    first = job.run("--available-now")
    assert first.returncode == 0, first.stderr

    def log_start() -> int:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        tp = TopicPartition(topic, 0)
        start = consumer.beginning_offsets([tp])[tp]
        consumer.close()
        return start

    produce(bootstrap, topic, 100, start=100)

    # Retention removes closed segments only: keep appending until the log start passes 100.
    def deleted_past_checkpoint() -> int:
        produce(bootstrap, topic, 1, start=1000)
        return log_start() if log_start() > 100 else 0

    lost_to = poll(deleted_past_checkpoint, 90, "retention to delete unread records", 1.0)
    second = job.run("--available-now")
    assert second.returncode == 1
    message = second.stderr.strip().splitlines()[-1]
    assert f"data lost in {topic} partition 0" in message
    assert "positions [100, " in message
    assert "accept_data_loss" in message
    assert lost_to > 100


def test_sigterm_stops_at_a_batch_boundary_and_the_next_run_continues(
    stack_env: dict[str, str], settings: Any, tmp_path: Path
) -> None:
    bootstrap = settings.bootstrap_servers
    topic = new_topic(bootstrap)
    pipeline = one_source_pipeline({"kind": "kafka", "topic": topic, "partitions": 3})
    job = cli_job(tmp_path, stack_env, pipeline)
    flowing = threading.Event()
    producer = threading.Thread(target=produce_until, args=(bootstrap, topic, flowing))
    producer.start()
    process = job.start()
    try:
        poll(lambda: committed_batches(job.checkpoint) >= 2, 120, "two batches to commit")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, job.log.read_text()[-3000:]
    finally:
        flowing.set()
        producer.join()
        if process.poll() is None:
            kill_hard(process)
    # At a boundary: the table holds exactly the batches the checkpoint committed.
    local = with_lake(settings, tmp_path)
    files = CheckpointFiles(str(job.checkpoint))
    committed = files.batch_ids("commits")[-1]
    raw_path = local.lake.table_path("raw", "events")
    app_id = f"ingest-events:{files.query_id()}"
    assert last_transaction_version(raw_path, local, app_id) == committed >= 1
    assert disagreement(JobLedger("ingest-events", "raw.events", raw_path), files, local) is None
    final = job.start("--until-idle", "5")
    assert final.wait(timeout=300) == 0, job.log.read_text()[-3000:]
    assert_exactly_the_topic(raw_rows(with_lake(settings, tmp_path)), bootstrap, topic)
