"""The benchmark's runs. Each takes the prepared environment and returns a Run."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import load
from bench.results import Run
from connectors.aws import AwsEndpoint
from connectors.kafka import admin as kafka_admin
from connectors.kafka.client import client_config
from connectors.kinesis.admin import ensure_stream
from connectors.kinesis.producer import KinesisRecordProducer
from connectors.shard_stream.calls import PacedCaller
from streaming import runtime
from streaming.ingest import ingest_job
from streaming.process import process_job
from streamlake.config.pipeline import KafkaSource, KinesisSource, Pipeline
from streamlake.config.settings import Settings
from streamlake.lake.spark_delta import row_count
from streamlake.local.kafka_broker import KafkaBroker
from streamlake.produce.events import click

PAGE_LIMIT = 10_000
# Latency runs produce at their rate this long before the records they measure: a stream's
# first batches run on a cold JVM and start behind, and the figure is the steady state.
LATENCY_WARMUP_S = 30.0
log = logging.getLogger("bench")


@dataclass
class BenchEnv:
    spark: Any
    settings: Settings
    pipeline: Pipeline
    aws: AwsEndpoint
    broker: KafkaBroker
    work: Path


def prefill_kafka(env: BenchEnv, topic: str, records: int) -> None:
    """Fill ``topic`` with ``records`` distinct orders of about 1 KB (if it holds fewer)."""
    client = client_config(env.settings.kafka)
    kafka_admin.ensure_topics(client, [kafka_admin.TopicSpec(topic, partitions=3)])
    present = sum(kafka_admin.record_counts(client, topic).values())
    if present == 0:
        seconds = load.send_all(env.broker, env.settings.bootstrap_servers, topic, records)
        log.info("bench: %s orders written to %s in %.1fs", records, topic, seconds)
    elif present != records:
        raise RuntimeError(f"{topic} holds {present} records, not {records}: remove {env.work}")


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
    rows = write_available_now(env, plain_kafka_stream(env, topic), path, checkpoint, records)
    seconds = time.monotonic() - started
    return Run("plain_spark_kafka_to_delta", rows, seconds, "readStream kafka -> writeStream delta")


def plain_kafka_stream(env: BenchEnv, topic: str) -> Any:
    """Spark's Kafka source on ``topic`` from its start, with no option a user would not set."""
    return (
        env.spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", env.settings.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )


def write_available_now(env: BenchEnv, frame: Any, path: str, checkpoint: str, records: int) -> int:
    """Run ``frame`` into a Delta table at ``path`` until it has read all there is; check
    that the table holds ``records`` rows."""
    query = (
        frame.writeStream.format("delta")
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start(path)
    )
    query.awaitTermination()
    rows = int(env.spark.read.format("delta").load(path).count())
    assert rows == records, f"plain Spark wrote {rows} rows to {path}, expected {records}"
    return rows


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


def process_raw(env: BenchEnv, name: str, job: str, pipeline: Pipeline, records: int) -> Run:
    """The process job over a raw table the ingest run filled: raw -> processed."""
    started = time.monotonic()
    stream_job = process_job(env.spark, job, pipeline, env.settings)
    runtime.run([stream_job], runtime.RunMode(available_now=True), runtime.StopSignal())
    seconds = time.monotonic() - started
    table = pipeline.jobs[job].table
    assert table is not None
    processed = row_count(env.spark, env.settings.lake.table_path("processed", table))
    quarantined = row_count(env.spark, env.settings.lake.table_path("quarantine", table))
    # Distinct, valid orders: every record must come out as a processed row.
    assert processed == records, f"{job}: {processed} processed, {quarantined} quarantined"
    return Run(name, processed, seconds, f"streamlake stream run {job} --available-now")


def plain_spark_process(env: BenchEnv, pipeline: Pipeline, records: int) -> Run:
    """What a user would write instead of the process job: the raw table as a Delta stream,
    ``from_json`` with the table's schema, appended to Delta; no validation, no dedup, no
    quarantine."""
    from pyspark.sql import functions as F

    schema = pipeline.tables["orders"].schema_ddl
    path = str(env.work / "plain" / "processed-orders")
    checkpoint = str(env.work / "plain-checkpoint" / "processed-orders")
    started = time.monotonic()
    raw = env.spark.readStream.format("delta").load(env.settings.lake.table_path("raw", "orders"))
    parsed = raw.select(
        F.from_json(F.col("payload").cast("string"), schema).alias("j"),
        "partition",
        "position",
        "ingest_ts",
    ).select("j.*", "partition", "position", "ingest_ts")
    rows = write_available_now(env, parsed, path, checkpoint, records)
    seconds = time.monotonic() - started
    return Run(
        "plain_spark_process",
        rows,
        seconds,
        "readStream delta raw -> from_json with the table's schema -> writeStream delta",
    )


def plain_spark_latency(env: BenchEnv, rate: float, seconds: float) -> Run:
    """The latency anchor: a minimal one-hop query (Kafka -> ``from_json`` -> Delta, the
    default trigger) at the offered load of ``e2e_latency``; latency from each record's
    Kafka timestamp to the commit that made it readable."""
    from pyspark.sql import functions as F

    topic = "bench-plain-latency"
    path = str(env.work / "latency" / "plain" / "table")
    checkpoint = str(env.work / "latency" / "plain" / "checkpoint")
    kafka_admin.ensure_topics(
        client_config(env.settings.kafka), [kafka_admin.TopicSpec(topic, partitions=3)]
    )
    warmup = 2_000
    load.send_all(env.broker, env.settings.bootstrap_servers, topic, warmup)
    schema = env.pipeline.tables["orders"].schema_ddl
    query = (
        plain_kafka_stream(env, topic)
        .select(F.from_json(F.col("value").cast("string"), schema).alias("j"), "timestamp")
        .select("j.*", "timestamp")
        .writeStream.format("delta")
        .option("checkpointLocation", checkpoint)
        .start(path)
    )
    try:
        wait_for_rows(env.spark, path, warmup, lambda: query.exception())
        measured_from = datetime.now(UTC) + timedelta(seconds=LATENCY_WARMUP_S)
        paced = load.send_paced(
            env.broker,
            env.settings.bootstrap_servers,
            topic,
            rate,
            LATENCY_WARMUP_S + seconds,
            warmup,
        )
        wait_for_rows(env.spark, path, warmup + paced.sent, lambda: query.exception())
    finally:
        query.stop()
    table = env.spark.read.format("delta").load(path)
    rows = table.select(
        F.regexp_extract(F.col("_metadata.file_path"), r"([^/]+)$", 1).alias("file"),
        F.col("timestamp").alias("event_ts"),
    )
    latencies = latencies_ms(env.spark, Path(path), rows, measured_from)
    return latency_run(
        "plain_spark_latency",
        latencies,
        rate,
        paced,
        f"produce at {rate:,.0f}/s; readStream kafka -> from_json -> writeStream delta "
        "(default trigger); Kafka timestamp -> readable, after a "
        f"{LATENCY_WARMUP_S:.0f} s warm-up at that rate",
    )


def wait_for_rows(spark: Any, path: str, rows: int, failed: Any, timeout_s: float = 900.0) -> None:
    deadline = time.monotonic() + timeout_s
    while row_count(spark, path) < rows:
        failure = failed()
        if failure is not None:
            raise RuntimeError(f"the query writing {path} failed: {failure}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not reach {rows} rows in {timeout_s:.0f}s")
        time.sleep(1.0)  # polling the table with a deadline


def latency_run(
    name: str, latencies: list[float], rate: float, paced: load.Paced, what: str
) -> Run:
    return Run(
        name,
        len(latencies),
        paced.seconds - LATENCY_WARMUP_S,  # the measured records' share of the run
        what,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        extra={
            "target_rate_per_s": round(rate, 1),
            "achieved_rate_per_s": round(paced.rate, 1),
            "max_ms": round(max(latencies), 1) if latencies else None,
            # Records produced in the first seconds at the rate are not measured.
            "warmup_s": LATENCY_WARMUP_S,
            # Share of the machine's cores the load generator used while producing.
            "load_generator_cpu_s": round(paced.cpu_s, 1),
            "load_generator_core_share": round(
                paced.cpu_s / (paced.seconds * (os.cpu_count() or 1)), 3
            ),
        },
    )


def e2e_latency(env: BenchEnv, name: str, rate: float, seconds: float, inline: bool) -> Run:
    """Produce at ``rate`` while ingest-orders and process-orders run back to back; latency
    is from each record's Kafka timestamp (set by the producer) to the commit of the
    processed version that made it readable."""
    topic = f"bench-{name}".replace("_", "-")
    settings = env.settings.model_copy(
        update={
            "lake": env.settings.lake.model_copy(
                update={
                    "root": str(env.work / "latency" / name / "lake"),
                    "checkpoint_root": str(env.work / "latency" / name / "checkpoints"),
                }
            )
        }
    )
    pipeline = kafka_pipeline(env, topic)
    mode = "inline" if inline else "separate"
    jobs = {
        "ingest-orders": pipeline.jobs["ingest-orders"].model_copy(update={"trigger": "0 seconds"}),
        "process-orders": pipeline.jobs["process-orders"].model_copy(
            update={"trigger": "0 seconds", "mode": mode}
        ),
    }
    running = list(jobs) if not inline else ["ingest-orders"]
    pipeline = pipeline.model_copy(update={"jobs": {**pipeline.jobs, **jobs}})
    warmup = 2_000
    kafka_admin.ensure_topics(
        client_config(settings.kafka), [kafka_admin.TopicSpec(topic, partitions=3)]
    )
    load.send_all(env.broker, settings.bootstrap_servers, topic, warmup)
    # Warm the jobs (and create raw.orders, which the process job needs) before measuring.
    for job_name in running:
        job = (
            ingest_job(env.spark, job_name, pipeline, settings, env.aws, available_now=True)
            if job_name.startswith("ingest")
            else process_job(env.spark, job_name, pipeline, settings)
        )
        runtime.run([job], runtime.RunMode(available_now=True), runtime.StopSignal())
    stop = runtime.StopSignal()
    streaming = [
        ingest_job(env.spark, "ingest-orders", pipeline, settings, env.aws, available_now=False)
        if job_name.startswith("ingest")
        else process_job(env.spark, "process-orders", pipeline, settings)
        for job_name in running
    ]
    failure: list[BaseException] = []

    def run_jobs() -> None:
        try:
            runtime.run(streaming, runtime.RunMode(), stop)
        except BaseException as exc:  # reported after the load, not lost in the thread
            failure.append(exc)

    runner = threading.Thread(target=run_jobs, name="bench-latency-jobs")
    runner.start()
    measured_from = datetime.now(UTC) + timedelta(seconds=LATENCY_WARMUP_S)
    paced = load.send_paced(
        env.broker, settings.bootstrap_servers, topic, rate, LATENCY_WARMUP_S + seconds, warmup
    )
    sent = paced.sent
    processed_path = settings.lake.table_path("processed", "orders")
    deadline = time.monotonic() + max(600.0, 10 * seconds)
    while row_count(env.spark, processed_path) < warmup + sent and not failure:
        if time.monotonic() > deadline:
            stop.request("bench deadline")
            runner.join()
            raise RuntimeError(f"processed.orders did not reach {warmup + sent} rows in time")
        time.sleep(1.0)  # polling the table with a deadline
    stop.request("bench: all records processed")
    runner.join()
    if failure:
        raise failure[0]
    latencies = processed_latencies_ms(env.spark, settings, measured_from)
    return latency_run(
        name,
        latencies,
        rate,
        paced,
        f"produce at {rate:,.0f}/s; ingest-orders and process-orders "
        + ("in one hop (process-orders mode: inline)" if inline else "as two hops")
        + ", trigger 0 seconds; Kafka timestamp -> readable in processed.orders, after a "
        + f"{LATENCY_WARMUP_S:.0f} s warm-up at that rate",
    )


def processed_latencies_ms(spark: Any, settings: Settings, since: datetime) -> list[float]:
    """Per processed row produced after ``since``: ms from its Kafka timestamp (raw's
    event_ts) to the moment the Delta commit that added its file was written."""
    from pyspark.sql import functions as F

    processed_path = settings.lake.table_path("processed", "orders")
    processed = spark.read.format("delta").load(processed_path)
    rows = processed.select(
        F.regexp_extract(F.col("_metadata.file_path"), r"([^/]+)$", 1).alias("file"),
        F.col("_partition").alias("partition"),
        F.col("_position").alias("position"),
    )
    raw = spark.read.format("delta").load(settings.lake.table_path("raw", "orders"))
    timed = rows.join(
        raw.select("partition", "position", "event_ts"), ["partition", "position"]
    ).select("file", "event_ts")
    return latencies_ms(spark, Path(processed_path), timed, since)


def latencies_ms(spark: Any, table: Path, rows: Any, since: datetime) -> list[float]:
    """For ``rows`` (``file``, ``event_ts``) with event_ts after ``since``: ms from event_ts
    to the moment the Delta commit that added the row's file was written (when readers
    first see it)."""
    from pyspark.sql import functions as F

    commits = commit_times(table)
    files = spark.createDataFrame(list(commits.items()), "file STRING, readable_at DOUBLE")
    joined = (
        rows.join(files, "file")
        .where(F.col("event_ts") >= F.lit(since))
        .select(((F.col("readable_at") - F.col("event_ts").cast("double")) * 1000).alias("ms"))
    )
    return sorted(float(r["ms"]) for r in joined.collect())


def commit_times(table: Path) -> dict[str, float]:
    """Data file name -> when the commit adding it was written (the log file's mtime)."""
    times: dict[str, float] = {}
    for log_file in sorted((table / "_delta_log").glob("*.json")):
        written = log_file.stat().st_mtime
        for line in log_file.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                times[action["add"]["path"].rsplit("/", 1)[-1]] = written
    return times


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)
