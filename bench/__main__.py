"""`make bench`: every figure in one go on this machine, written to bench/results/.

Starts its own local stack (free loopback ports, state in .streamlake/bench) and stops it
at the end. Sizes default to the issue's: 1,000,000 Kafka records of about 1 KB; the
Kinesis stream holds fewer by default because the local AWS API server keeps it in memory.
Every Kafka record is a distinct order, so the process job keeps them all.
"""

from __future__ import annotations

import logging
import shutil
import socket
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from bench import figures
from bench.results import Report
from connectors.aws import aws_endpoint
from streamlake.config import load_config
from streamlake.local.stack import LocalStack
from streamlake.logs import setup_logging
from streamlake.paths import checkout_root

log = logging.getLogger("bench")
T = TypeVar("T")
app = typer.Typer(add_completion=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@app.command()
def main(
    kafka_records: Annotated[int, typer.Option(help="Records in the Kafka topic.")] = 1_000_000,
    kinesis_records: Annotated[int, typer.Option(help="Records in the Kinesis stream.")] = 200_000,
    work: Annotated[Path, typer.Option(help="Scratch directory.")] = Path(".streamlake/bench"),
    latency_seconds: Annotated[float, typer.Option(help="How long e2e_latency produces.")] = 30.0,
    only: Annotated[
        str | None, typer.Option(help="Run only the kafka or the kinesis figures.")
    ] = None,
) -> None:
    """Run the benchmark and write bench/results/latest.{json,md}."""
    setup_logging("INFO")
    # A fresh stack too: a topic left by an earlier run may hold other records.
    for scratch in ("stack", "lake", "checkpoints", "plain", "plain-checkpoint", "latency"):
        shutil.rmtree(work / scratch, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    overrides = {
        "STREAMLAKE__LOCAL__STATE_DIR": str(work / "stack"),
        "STREAMLAKE__LOCAL__KAFKA_PORT": str(free_port()),
        "STREAMLAKE__LOCAL__KAFKA_CONTROLLER_PORT": str(free_port()),
        "STREAMLAKE__LOCAL__KAFKA_SASL_PORT": str(free_port()),
        "STREAMLAKE__LOCAL__AWS_PORT": str(free_port()),
        "STREAMLAKE__LOCAL__KAFKA_HEAP": "1g",
        "STREAMLAKE__LAKE__ROOT": str(work / "lake"),
        "STREAMLAKE__LAKE__CHECKPOINT_ROOT": str(work / "checkpoints"),
        "STREAMLAKE__SPARK__UI_ENABLED": "false",
        "STREAMLAKE__SPARK__DRIVER_MEMORY": "4g",
    }
    config = load_config("local", checkout_root() / "configs", environ=overrides)
    stack = LocalStack(config.settings, config.pipeline)
    report = Report()
    stack.up()
    try:
        from streamlake.spark_session import build_spark_session

        spark = build_spark_session(config.settings, app_name="streamlake-bench")
        env = figures.BenchEnv(
            spark,
            config.settings,
            config.pipeline,
            aws_endpoint(config.settings),
            stack.kafka,
            work,
        )
        if only in (None, "kafka"):
            run_kafka(env, report, kafka_records, latency_seconds)
        if only in (None, "kinesis"):
            run_kinesis(env, report, kinesis_records)
        spark.stop()
    finally:
        stack.down()
    report.ratio("ingest_vs_ceiling", "kafka_ingest_raw", "kafka_consume_ceiling", 0.5)
    report.ratio("ingest_vs_plain_spark", "kafka_ingest_raw", "plain_spark_kafka_to_delta", 0.9)
    report.ratio("kinesis_vs_ceiling", "kinesis_ingest_raw", "kinesis_read_ceiling", 0.7)
    report.ratio("process_vs_ingest", "process_orders", "kafka_ingest_raw", 0.5)
    for name in ("e2e_latency", "e2e_latency_sustainable"):
        latency = report.run(name)
        if latency is not None:
            report.limit(f"{name}_p50_ms", latency.p50_ms, 1500)
            report.limit(f"{name}_p99_ms", latency.p99_ms, 3000)
    json_path, md_path = report.write()
    print(md_path.read_text())
    print(f"written: {json_path} and {md_path}")


def run_kafka(env: figures.BenchEnv, report: Report, records: int, latency_seconds: float) -> None:
    topic = "bench-orders"
    warmup = "bench-warmup"
    step("prefilling Kafka", lambda: figures.prefill_kafka(env, topic, records))
    figures.prefill_kafka(env, warmup, 20_000)
    figures.plain_spark_kafka_to_delta(env, warmup, 20_000)  # JVM warm-up, not reported
    report.runs.append(
        step("kafka_consume_ceiling", lambda: figures.kafka_consume_ceiling(env, topic, records))
    )
    report.runs.append(
        step(
            "plain_spark_kafka_to_delta",
            lambda: figures.plain_spark_kafka_to_delta(env, topic, records),
        )
    )
    pipeline = figures.kafka_pipeline(env, topic)
    report.runs.append(
        step(
            "kafka_ingest_raw",
            lambda: figures.ingest_raw(env, "kafka_ingest_raw", "ingest-orders", pipeline, records),
        )
    )
    report.runs.append(
        step(
            "process_orders",
            lambda: figures.process_raw(env, "process_orders", "process-orders", pipeline, records),
        )
    )
    # At half the ingest rate process-orders falls behind here, so that latency measures a
    # growing backlog; the sustainable run shows the latency of a pipeline that keeps up.
    for name, base, what in (
        ("e2e_latency", "kafka_ingest_raw", "half the measured ingest rate"),
        ("e2e_latency_sustainable", "process_orders", "half the measured process rate"),
    ):
        measured = report.run(base)
        assert measured is not None
        rate = measured.records_per_s / 2
        report.runs.append(
            step(name, partial(figures.e2e_latency, env, name, rate, latency_seconds, what))
        )


def run_kinesis(env: figures.BenchEnv, report: Report, records: int) -> None:
    stream = "bench-clickstream"
    step("prefilling Kinesis", lambda: figures.prefill_kinesis(env, stream, records))
    report.runs.append(
        step("kinesis_read_ceiling", lambda: figures.kinesis_read_ceiling(env, stream, records))
    )
    pipeline = figures.kinesis_pipeline(env, stream)
    report.runs.append(
        step(
            "kinesis_ingest_raw",
            lambda: figures.ingest_raw(
                env, "kinesis_ingest_raw", "ingest-clickstream", pipeline, records
            ),
        )
    )
    report.notes.append(
        "kinesis_ingest_raw reads every record twice: the driver probes each shard to fix "
        "the batch's end sequence numbers, then executors read the range (see "
        "connectors/shard_stream/reader.py)."
    )


def step(name: str, action: Callable[[], T]) -> T:
    log.info("bench: %s", name)
    started = time.monotonic()
    result = action()
    log.info("bench: %s done in %.1fs", name, time.monotonic() - started)
    return result


if __name__ == "__main__":
    app()
