"""`batch run compact` on real Delta tables: compaction beside a running Kafka ingest job
changes no row and loses none, and VACUUM refuses a retention a stream reader cannot
tolerate."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from batch.jobs import BatchRun, run_batch_job
from connectors.aws import aws_endpoint
from streaming import runtime
from streaming.ingest import ingest_job
from streamlake.config.pipeline import Compaction, Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import RetentionError
from streamlake.lake.spark_delta import read_version
from tests.integration.test_ingest_kafka import assert_exactly_the_topic, new_topic, produce_until
from tests.support import (
    one_source_pipeline,
    poll,
    raw_rows,
    run_process,
    with_lake,
    with_table,
    write_raw,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def compact(
    spark: SparkSession, settings: Settings, pipeline: Pipeline, only: str | None = None
) -> Any:
    jobs = {**pipeline.model_dump()["jobs"], "compact": {"kind": "compact"}}
    declared = Pipeline.model_validate({**pipeline.model_dump(), "jobs": jobs})
    return run_batch_job(BatchRun("compact", declared, settings, lambda: spark, only=only))


def checksum(spark: SparkSession, path: str, version: int) -> tuple[int, int]:
    """Rows and an order-free checksum of every column of the table at ``version``."""
    from pyspark.sql import functions as F

    rows = read_version(spark, path, version)
    total = rows.select(
        F.count("*"), F.sum(F.xxhash64(*rows.columns).cast("decimal(38,0)"))
    ).first()
    assert total is not None
    return int(total[0]), int(total[1] or 0)


def commit_files(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).detail().first()["numFiles"])


@pytest.mark.parametrize("engine", ["spark", "delta-rs"])
def test_compaction_beside_a_streaming_job_keeps_every_row_and_loses_none(
    spark: SparkSession, settings: Settings, tmp_path: Path, engine: str
) -> None:
    """Either engine's rewrite commits between the stream's batches; the stream goes on on
    top of it, and the table's content is unchanged by it."""
    from delta.tables import DeltaTable

    bootstrap = settings.bootstrap_servers
    topic = new_topic(bootstrap)
    pipeline = one_source_pipeline({"kind": "kafka", "topic": topic, "partitions": 3}, "1 second")
    pipeline = with_table(pipeline, "events", compaction=Compaction(engine=engine))
    local = with_lake(settings, tmp_path)
    raw = local.lake.table_path("raw", "events")
    flowing, stop = threading.Event(), runtime.StopSignal()
    producer = threading.Thread(target=produce_until, args=(bootstrap, topic, flowing))
    job = ingest_job(spark, "ingest-events", pipeline, local, aws_endpoint(local), False)
    failures: list[BaseException] = []

    def run_job() -> None:
        try:
            runtime.run([job], runtime.RunMode(), stop)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    streaming = threading.Thread(target=run_job)
    producer.start()
    streaming.start()
    try:
        poll(lambda: Path(raw).is_dir() and commit_files(spark, raw) >= 4, 180, "small raw files")
        report = compact(spark, local, pipeline, only="raw.events")
        more = commit_files(spark, raw) + 1
        poll(lambda: commit_files(spark, raw) >= more, 120, "the stream to go on writing")
    finally:
        flowing.set()
        producer.join()
    # Let the job take in what was produced, then stop it at a batch boundary.
    poll(lambda: len(raw_rows(local)) >= sum_of_topic(bootstrap, topic), 180, "the job to catch up")
    stop.request("test")
    streaming.join(timeout=180)
    assert not failures, failures

    outcome = report.tables[0]
    assert (outcome.table, outcome.action) == ("raw.events", "optimized")
    history = DeltaTable.forPath(spark, raw).history().collect()
    optimized = [row for row in history if row["operation"] == "OPTIMIZE"]
    assert len(optimized) == 1
    metrics, version = optimized[0]["operationMetrics"], optimized[0]["version"]
    # Spark and delta-rs name the same two counts differently.
    removed = metrics.get("numRemovedFiles", metrics.get("numFilesRemoved"))
    added = metrics.get("numAddedFiles", metrics.get("numFilesAdded"))
    assert int(removed) >= 4 > int(added)
    assert outcome.detail.startswith("delta-rs ") == (engine == "delta-rs")
    assert checksum(spark, raw, version) == checksum(spark, raw, version - 1)
    assert_exactly_the_topic(raw_rows(local), bootstrap, topic)


def sum_of_topic(bootstrap: str, topic: str) -> int:
    from tests.integration.test_ingest_kafka import end_offsets

    return sum(end_offsets(bootstrap, topic).values())


@pytest.fixture
def tokyo_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The driver's local time zone 9 hours east of UTC, so a commit's age read as local
    time would be off by 9 hours; restored afterwards."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_retention_shorter_than_a_stream_reader_needs_is_refused_naming_the_reader(
    spark: SparkSession, settings: Settings, tmp_path: Path, tokyo_time: None
) -> None:
    pipeline = one_source_pipeline({"kind": "kafka", "topic": "unused"})
    table = pipeline.tables["events"].model_copy(
        update={"compaction": Compaction(retention="2 hours")}
    )
    jobs = {**pipeline.jobs, "process-events": {"kind": "process", "table": "events"}}
    pipeline = Pipeline.model_validate(
        {**pipeline.model_dump(), "tables": {"events": table.model_dump()}, "jobs": jobs}
    )
    local = with_lake(settings, tmp_path)
    write_raw(spark, local, "events", [b'{"id": "a"}', b'{"id": "b"}'], stream="unused")
    run_process(spark, local, pipeline, job="process-events")
    write_raw(spark, local, "events", [b'{"id": "c"}'], stream="unused", first_position=2)
    # The version the process job reads next was committed three hours ago.
    log_dir = Path(local.lake.table_path("raw", "events")) / "_delta_log"
    three_hours_ago = time.time() - 3 * 3600
    for commit in log_dir.glob("*.json"):
        os.utime(commit, (three_hours_ago, three_hours_ago))

    with pytest.raises(RetentionError) as refused:
        compact(spark, local, pipeline)
    message = str(refused.value)
    assert refused.value.exit_code == 2
    assert "raw.events" in message and "process-events" in message and "2 hours" in message
    assert len(message.splitlines()) == 1
    # Nothing was compacted before the refusal.
    assert all(r["operation"] != "OPTIMIZE" for r in history_of(spark, local, "raw", "events"))

    # A retention that reaches back far enough goes ahead.
    longer = table.model_copy(update={"compaction": Compaction(retention="4 hours")})
    fine = Pipeline.model_validate(
        {**pipeline.model_dump(), "tables": {"events": longer.model_dump()}}
    )
    report = compact(spark, local, fine)
    assert {t.table for t in report.tables} >= {"raw.events", "processed.events"}


def history_of(spark: SparkSession, settings: Settings, layer: str, table: str) -> list[Any]:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, settings.lake.table_path(layer, table)).history().collect()


def test_a_retention_under_an_hour_does_not_load() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="under 1 hour"):
        Compaction(retention="30 minutes")


def test_delta_rs_compaction_on_s3_leaves_a_table_spark_reads_and_writes_on(
    spark: SparkSession, settings: Settings
) -> None:
    """On the local S3: delta-rs's rewrite commits through S3's conditional writes beside
    the Spark writers' log store; Spark reads the same rows after it and appends on top."""
    import uuid

    from streamlake.config.settings import LakeSettings
    from streamlake.lake.delta_rs import open_delta_table

    root = f"s3a://shop-lake/tests/{uuid.uuid4().hex}"
    lake = settings.model_copy(
        update={"lake": LakeSettings(root=f"{root}/lake", checkpoint_root=f"{root}/cp")}
    )
    pipeline = one_source_pipeline({"kind": "kafka", "topic": "unused"})
    pipeline = with_table(pipeline, "events", compaction=Compaction(engine="delta-rs"))
    payloads = [b'{"id": 1}', b'{"id": 2}']
    write_raw(spark, lake, "events", payloads * 3, stream="unused", commits=3)
    raw = lake.lake.table_path("raw", "events")
    before = checksum(spark, raw, open_delta_table(raw, lake).version())

    report = compact(spark, lake, pipeline, only="raw.events")

    outcome = report.tables[0]
    assert outcome.action == "optimized"
    assert outcome.files_before >= 3 and outcome.files_after == 1
    version = open_delta_table(raw, lake).version()
    assert checksum(spark, raw, version) == before
    write_raw(spark, lake, "events", [b'{"id": 3}'], stream="unused", first_position=6)
    assert spark.read.format("delta").load(raw).count() == 7
