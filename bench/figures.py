"""The benchmark's runs. Each takes the prepared environment and returns a Run."""

from __future__ import annotations

import json
import random
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results import Run
from connectors.aws import AwsEndpoint
from connectors.kafka import admin as kafka_admin
from connectors.kinesis.admin import ensure_stream
from connectors.kinesis.producer import KinesisRecordProducer
from connectors.shard_stream.calls import PacedCaller
from streaming import runtime
from streaming.ingest import ingest_job
from streamlake.config.pipeline import KafkaSource, KinesisSource, Pipeline
from streamlake.config.settings import Settings
from streamlake.local.kafka_broker import KafkaBroker
from streamlake.produce.events import click, order

PAGE_LIMIT = 10_000


@dataclass
class BenchEnv:
    spark: Any
    settings: Settings
    pipeline: Pipeline
    aws: AwsEndpoint
    broker: KafkaBroker
    work: Path


def order_payloads(count: int, size: int = 1000, seed: int = 1) -> list[bytes]:
    """Realistic order JSON documents of about ``size`` bytes (more line items)."""
    rng = random.Random(seed)
    payloads = []
    now = datetime.now(UTC)
    for _ in range(count):
        document = order(rng, now)
        while len(json.dumps(document)) < size - 60:
            document["items"].append(
                dict(document["items"][0], sku=f"sku-{rng.randint(1, 999):04d}")
            )
        payloads.append(json.dumps(document).encode())
    return payloads


def prefill_kafka(env: BenchEnv, topic: str, records: int) -> None:
    kafka_admin.ensure_topics(
        env.settings.bootstrap_servers, [kafka_admin.TopicSpec(topic, partitions=3)]
    )
    present = sum(kafka_admin.record_counts(env.settings.bootstrap_servers, topic).values())
    if present >= records:
        return
    payload_file = env.work / "orders.jsonl"
    payload_file.write_bytes(b"\n".join(order_payloads(20_000)))
    command = env.broker.jvm_command(
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        topic,
        "--num-records",
        str(records - present),
        "--throughput",
        "-1",
        "--payload-file",
        str(payload_file),
        "--producer-props",
        f"bootstrap.servers={env.settings.bootstrap_servers}",
        "acks=1",
        "linger.ms=20",
        "batch.size=262144",
    )
    subprocess.run(command, check=True, capture_output=True, timeout=1800)


def kafka_consume_ceiling(env: BenchEnv, topic: str, records: int) -> Run:
    command = env.broker.jvm_command(
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        env.settings.bootstrap_servers,
        "--topic",
        topic,
        "--messages",
        str(records),
        "--timeout",
        "120000",
        "--hide-header",
    )
    started = time.monotonic()
    result = subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - started
    # start, end, MB, MB/s, messages, messages/s, rebalance ms, fetch ms, fetch MB/s, fetch msg/s
    fields = [f.strip() for f in result.stdout.strip().splitlines()[-1].split(",")]
    consumed, fetch_ms = int(fields[4]), float(fields[7])
    return Run(
        "kafka_consume_ceiling",
        consumed,
        fetch_ms / 1000 if fetch_ms > 0 else wall,
        "Kafka's ConsumerPerformance tool (fetch time, JVM start excluded)",
        extra={"wall_seconds_with_jvm_start": round(wall, 1), "mb_per_s": float(fields[3])},
    )


def plain_spark_kafka_to_delta(env: BenchEnv, topic: str, records: int) -> Run:
    """What a user would write instead: Kafka source straight into a Delta sink."""
    path = str(env.work / "plain" / topic)
    checkpoint = str(env.work / "plain-checkpoint" / topic)
    started = time.monotonic()
    query = (
        env.spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", env.settings.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
        .writeStream.format("delta")
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start(path)
    )
    query.awaitTermination()
    seconds = time.monotonic() - started
    rows = env.spark.read.format("delta").load(path).count()
    assert rows == records, f"plain Spark wrote {rows} rows, expected {records}"
    return Run("plain_spark_kafka_to_delta", rows, seconds, "readStream kafka -> writeStream delta")


def ingest_raw(env: BenchEnv, name: str, job: str, pipeline: Pipeline, records: int) -> Run:
    started = time.monotonic()
    stream_job = ingest_job(env.spark, job, pipeline, env.settings, env.aws, available_now=True)
    runtime.run([stream_job], runtime.RunMode(available_now=True), runtime.StopSignal())
    seconds = time.monotonic() - started
    table = pipeline.jobs[job].table
    assert table is not None
    rows = env.spark.read.format("delta").load(env.settings.lake.table_path("raw", table)).count()
    assert rows == records, f"{job} wrote {rows} rows, expected {records}"
    return Run(name, rows, seconds, f"streamlake stream run {job} --available-now")


def kafka_pipeline(env: BenchEnv, topic: str) -> Pipeline:
    sources = dict(env.pipeline.sources)
    sources["orders"] = KafkaSource(kind="kafka", topic=topic, partitions=3)
    return env.pipeline.model_copy(update={"sources": sources})


def kinesis_pipeline(env: BenchEnv, stream: str) -> Pipeline:
    sources = dict(env.pipeline.sources)
    sources["clickstream"] = KinesisSource(kind="kinesis", stream=stream, shards=2)
    return env.pipeline.model_copy(update={"sources": sources})


def prefill_kinesis(env: BenchEnv, stream: str, records: int) -> None:
    kinesis = env.aws.client("kinesis")
    ensure_stream(kinesis, stream, 2)
    producer = KinesisRecordProducer(kinesis, stream)
    rng = random.Random(5)
    now = datetime.now(UTC)
    for _ in range(records):
        event = click(rng, now)
        producer.send(event["session_id"], json.dumps(event).encode())
    producer.flush()


def kinesis_read_ceiling(env: BenchEnv, stream: str, records: int) -> Run:
    """A plain boto3 GetRecords loop over every shard, paced like the source (5 calls/s)."""
    kinesis = env.aws.client("kinesis")
    caller = PacedCaller(0.2)
    shards = [s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]]
    read = 0
    started = time.monotonic()
    for shard in shards:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = caller.call(
                shard, kinesis.get_records, ShardIterator=iterator, Limit=PAGE_LIMIT
            )
            read += len(answer["Records"])
            iterator = answer.get("NextShardIterator")
            if not answer["Records"] and not answer.get("MillisBehindLatest"):
                break
    seconds = time.monotonic() - started
    assert read == records, f"read {read} records, expected {records}"
    return Run("kinesis_read_ceiling", read, seconds, "boto3 GetRecords loop, shard after shard")
