"""Files dropped in a landing place to raw: CSV files in a local folder and JSON-lines,
Parquet and Avro files on the local S3 (put with plain boto3) land once each, record by
record, with their coordinates; read files move to the archive, a file that cannot be read
to the error place with its reason beside it, and the others go on; a job killed after its
raw commit or mid-file and restarted lands every record once; the process job types CSV
records by the declared columns and quarantines the malformed ones."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors.aws import aws_endpoint
from connectors.files.landing import Landing
from connectors.files.producer import FileDropSink
from connectors.s3 import ensure_bucket
from streamlake.config.pipeline import Pipeline
from streamlake.config.settings import Settings
from streamlake.produce.events import EventMix, csv_returns
from tests.support import (
    cli_job,
    coordinates,
    files_pipeline,
    kill_hard,
    lake_rows,
    poll,
    raw_rows,
    run_in_process,
    run_process,
    with_lake,
)

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def drop_returns(
    pipeline: Pipeline, settings: Settings, count: int, seed: int, bad: float = 0
) -> FileDropSink:
    """``count`` returns as CSV files of 10 records, dropped as `produce` drops them."""
    source = pipeline.sources["returns"]
    sink = FileDropSink(Landing.of(source, aws_endpoint(settings)), "csv", rows_per_file=10)  # type: ignore[arg-type]
    for event in csv_returns(EventMix(count, bad_ratio=bad, seed=seed)):
        sink.send(event)
    sink.close()
    return sink


def names_under(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def test_local_csv_files_land_once_each_and_move_to_the_archive(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    local = with_lake(settings, tmp_path)
    pipeline = files_pipeline(str(tmp_path / "drop"))
    first = drop_returns(pipeline, local, 25, seed=1)
    assert first.files == 3
    landing = tmp_path / "drop" / "landing"
    # A name with a space (Spark logs it URI-encoded), a field with a comma and quotes.
    (landing / "by hand.csv").write_text(
        "return_id,order_id,sku,qty,reason,amount,currency,returned_at\n"
        'r-q1,o-1,SKU-1,1,"damaged, ""badly""",1.50,EUR,2026-11-28T10:00:00Z\n'
    )
    dropped = names_under(landing)
    (landing / "wrong-header.csv").write_text("qty,return_id\n1,r-1\n")
    run_in_process(spark, local, pipeline)

    rows = raw_rows(local)
    assert len(rows) == 26 and len(set(coordinates(rows))) == 26
    assert {r["source"] for r in rows} == {"files"}
    assert {r["stream"] for r in rows} == {str(tmp_path / "drop" / "landing")}
    assert {r["partition"] for r in rows} == set(dropped)
    by_file: dict[str, list[int]] = {}
    for row in rows:
        by_file.setdefault(row["partition"], []).append(int(row["position"]))
    assert sorted(sorted(p) for p in by_file.values()) == [
        [1],
        list(range(1, 6)),
        *[list(range(1, 11))] * 2,
    ]
    assert all(r["event_ts"] is not None and r["key"] is None for r in rows)
    # The read files are archived, the unreadable one is in the error place with its reason.
    assert names_under(landing) == []
    assert names_under(tmp_path / "drop" / "archive") == dropped
    assert names_under(tmp_path / "drop" / "errors") == [
        "wrong-header.csv",
        "wrong-header.csv.reason.json",
    ]
    reason = json.loads((tmp_path / "drop" / "errors" / "wrong-header.csv.reason.json").read_text())
    assert reason["reason"] == (
        "its header (qty, return_id) is not the table's columns in order (return_id, order_id, "
        "sku, qty, reason, amount, currency, returned_at)"
    )
    assert reason["file"] == f"{tmp_path / 'drop' / 'landing'}/wrong-header.csv"

    # New files later: only they land.
    drop_returns(pipeline, local, 12, seed=2, bad=0.5)
    run_in_process(spark, local, pipeline)
    rows = raw_rows(local)
    assert len(rows) == 38 and len(set(coordinates(rows))) == 38
    assert names_under(landing) == []

    # The process job types CSV records by the declared columns, and quarantines the rest.
    run_process(spark, local, pipeline, "process-events")
    processed = lake_rows(local, "processed", "events")
    quarantined = lake_rows(local, "quarantine", "events")
    assert len(processed) + len(quarantined) == 38
    assert len(processed) >= 26
    [by_hand] = [r for r in processed if r["return_id"] == "r-q1"]
    assert (by_hand["reason"], str(by_hand["amount"])) == ('damaged, "badly"', "1.50")
    sample = next(r for r in processed if r["return_id"])
    assert isinstance(sample["qty"], int) and sample["amount"] is not None
    assert sample["returned_at"] is not None
    assert quarantined and {q["error_kind"] for q in quarantined} <= {"parse", "schema"}
    widths = [q for q in quarantined if q["error"] == "not a CSV record of the table's 8 columns"]
    assert widths and all(len(q["payload"].split(b",")) == 6 for q in widths)


def test_json_parquet_and_avro_files_on_s3_land_as_json_records(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    import fastavro
    import pyarrow as pa
    import pyarrow.parquet as pq

    aws = aws_endpoint(settings)
    s3 = aws.client("s3")
    bucket = f"landing-{uuid.uuid4().hex[:10]}"
    ensure_bucket(s3, bucket, aws.region)
    pipeline = files_pipeline(f"s3://{bucket}", fmt="auto")
    local = with_lake(settings, tmp_path)
    # Nothing landed yet (not even the prefix): a run finds nothing, and does not fail.
    run_in_process(spark, local, pipeline)
    assert raw_rows(local) == []
    row = {"return_id": "r-{}", "qty": 1, "amount": "3.50", "returned_at": "2026-11-28T10:00:00Z"}
    lines = "\n".join(json.dumps(row | {"return_id": f"r-j{n}"}) for n in range(4))
    s3.put_object(Bucket=bucket, Key="landing/2026/11/28/a.jsonl", Body=lines.encode())
    parquet = io.BytesIO()
    pq.write_table(
        pa.Table.from_pylist([row | {"return_id": f"r-p{n}"} for n in range(3)]), parquet
    )
    s3.put_object(Bucket=bucket, Key="landing/b.parquet", Body=parquet.getvalue())
    avro = io.BytesIO()
    schema = {
        "type": "record",
        "name": "Return",
        "fields": [{"name": "return_id", "type": "string"}, {"name": "qty", "type": "int"}],
    }
    fastavro.writer(avro, fastavro.parse_schema(schema), [{"return_id": "r-a1", "qty": 2}])
    s3.put_object(Bucket=bucket, Key="landing/c.avro", Body=avro.getvalue())
    s3.put_object(Bucket=bucket, Key="landing/d.parquet", Body=b"PAR1 and then nothing")

    run_in_process(spark, local, pipeline)

    rows = raw_rows(local)
    assert len(rows) == 8 and len(set(coordinates(rows))) == 8
    ids = sorted(json.loads(r["payload"])["return_id"] for r in rows)
    assert ids == ["r-a1", "r-j0", "r-j1", "r-j2", "r-j3", "r-p0", "r-p1", "r-p2"]
    assert {r["partition"] for r in rows} == {
        "landing/2026/11/28/a.jsonl",
        "landing/b.parquet",
        "landing/c.avro",
    }

    def keys(prefix: str) -> list[str]:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        # Without folder markers (an empty "landing/" object keeps the empty prefix for Spark).
        return sorted(item["Key"] for item in listed if not item["Key"].endswith("/"))

    assert keys("landing/") == []
    assert keys("archive/") == ["archive/2026/11/28/a.jsonl", "archive/b.parquet", "archive/c.avro"]
    assert keys("errors/") == ["errors/d.parquet", "errors/d.parquet.reason.json"]
    note = json.loads(
        s3.get_object(Bucket=bucket, Key="errors/d.parquet.reason.json")["Body"].read()
    )
    assert note["reason"].startswith("not a readable parquet file: ")
    assert note["file"] == f"s3://{bucket}/landing/d.parquet"


def test_a_job_killed_after_its_raw_commit_or_mid_file_lands_every_record_once(
    stack_env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    pipeline = files_pipeline(str(tmp_path / "drop"))
    local = with_lake(settings, tmp_path)
    job = cli_job(tmp_path, stack_env, pipeline)
    drop_returns(pipeline, local, 30, seed=3)

    # Killed between the raw commit and the archive: the files are still in the landing place.
    crashing = dataclasses.replace(
        job, env={**job.env, "STREAMLAKE__FAULT_POINT": "after-raw-commit"}
    )
    crashed = crashing.run("--available-now")
    assert crashed.returncode != 0 and "fault point after-raw-commit reached" in crashed.stderr
    assert len(names_under(tmp_path / "drop" / "landing")) == 3
    assert len(raw_rows(local)) == 30

    # A big file, killed while its batch runs.
    sink = FileDropSink(
        Landing.of(pipeline.sources["returns"], aws_endpoint(local)), "csv", rows_per_file=60_000
    )  # type: ignore[arg-type]
    for event in csv_returns(EventMix(60_000, seed=4)):
        sink.send(event)
    sink.close()
    running = job.start("--available-now")
    try:
        poll(
            lambda: (job.checkpoint / "offsets" / "1").exists(),
            120,
            "the big file's batch to start",
        )
    finally:
        kill_hard(running)

    finished = job.run("--available-now")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    rows = raw_rows(local)
    assert len(rows) == 60_030 and len(set(coordinates(rows))) == 60_030
    assert names_under(tmp_path / "drop" / "landing") == []
    assert len(names_under(tmp_path / "drop" / "archive")) == 4
