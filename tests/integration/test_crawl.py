"""The crawl job against the local AWS server (Glue and S3 through boto3, over HTTP): a table
per crawler with the columns, types, partition keys and partitions read from JSON lines,
CSV, Parquet and Avro files on a local folder and on S3; a quiet second run; schema changes
as a Glue crawler's default policy applies them; and the failures that stop one crawler
only. No Spark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.crawl import crawl_all
from batch.jobs import BatchRun, run_batch_job
from batch.report import BatchReport
from connectors.aws import aws_endpoint
from streamlake.config.pipeline import Crawler, Pipeline
from streamlake.config.settings import Settings
from streamlake.errors import EXIT_JOB_FAILED
from streamlake.paths import checkout_root
from tests.support import CountingGlue, cli_env, write_config_dir

pytestmark = [pytest.mark.integration]

TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"


@pytest.fixture
def glue(settings: Settings) -> Any:
    return aws_endpoint(settings).client("glue")


def crawl_pipeline(loaded: Any, **crawlers: dict[str, Any]) -> Pipeline:
    """The demo pipeline with these crawlers, under a name of its own, so that its landing
    database (<name>_landing) is this test's alone."""
    pipeline: Pipeline = loaded.pipeline
    return pipeline.model_copy(
        update={
            "name": f"crawl_{uuid.uuid4().hex[:10]}",
            "crawlers": {name: Crawler(**spec) for name, spec in crawlers.items()},
        }
    )


def crawl_run(pipeline: Pipeline, settings: Settings, only: str | None = None) -> BatchRun:
    def no_spark() -> Any:
        raise AssertionError("the crawl job must not start Spark")

    return BatchRun("crawl", pipeline, settings, spark_factory=no_spark, only=only)


def outcomes(report: BatchReport) -> dict[str, tuple[str, str]]:
    return {t.table.split(".", 1)[1]: (t.action, t.detail) for t in report.tables}


def write_json(path: Path, *records: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def columns_of(table: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]


def partitions_of(glue: Any, database: str, table: str) -> dict[tuple[str, ...], dict[str, Any]]:
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table)
    return {tuple(p["Values"]): p for page in pages for p in page["Partitions"]}


ORDER = {
    "order_id": "o1",
    "qty": 2,
    "amount": 10,
    "paid": True,
    "items": [{"sku": "a", "qty": 1}],
    "created_at": "2024-05-01T12:00:00Z",
}
AVRO_SCHEMA = {
    "type": "record",
    "name": "Order",
    "namespace": "com.shop",
    "fields": [
        {"name": "orderId", "type": "string"},
        {"name": "amount", "type": "long"},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


def landing_files(root: Path) -> dict[str, Path]:
    """A folder per format, partitioned three ways, with the files Spark and Hadoop leave
    beside the data."""
    folders = {kind: root / kind for kind in ("json", "csv", "parquet", "avro")}
    write_json(folders["json"] / "year=2024/month=05/part-0.json", ORDER, ORDER | {"qty": 3})
    write_json(folders["json"] / "year=2024/month=06/part-0.jsonl", ORDER | {"note": None})
    (folders["json"] / "_SUCCESS").write_text("")
    (folders["json"] / "year=2024/month=05/.part-0.json.crc").write_text("crc")
    for country in ("SE", "DE"):
        path = folders["csv"] / f"country={country}" / "returns.csv"
        path.parent.mkdir(parents=True)
        path.write_text("Order_ID;qty;refund;returned_at\no1;1;9.5;2024-05-01 12:00:00\n")
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "amount": pa.array([1, 2], pa.decimal128(12, 2)),
            "at": pa.array([0, 1], pa.timestamp("ms", tz="UTC")),
            "tags": pa.array([["a"], []], pa.list_(pa.string())),
            "ship_to": pa.array([{"city": "x"}, None], pa.struct([("city", pa.string())])),
        }
    )
    for day in ("2024-05-01", "2024-05-02"):
        path = folders["parquet"] / f"day={day}" / "part-0.snappy.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(table, path)
    folders["avro"].mkdir()
    with (folders["avro"] / "orders.avro").open("wb") as out:
        record = {"orderId": "o1", "amount": 5, "status": "NEW", "at": 0}
        fastavro.writer(out, fastavro.parse_schema(AVRO_SCHEMA), [record])
    return folders


def test_each_format_on_a_local_folder_and_a_second_run_writes_nothing(
    loaded: Any, settings: Settings, glue: Any, tmp_path: Path
) -> None:
    folders = landing_files(tmp_path)
    pipeline = crawl_pipeline(
        loaded,
        orders_json={"path": str(folders["json"])},
        returns_csv={"path": str(folders["csv"]), "delimiter": ";"},
        events_parquet={"path": str(folders["parquet"])},
        orders_avro={"path": str(folders["avro"]), "table": "avro_orders"},
    )
    database = f"{pipeline.name}_landing"

    report = run_batch_job(crawl_run(pipeline, settings))

    assert report.kind == "crawl" and report.failed is None
    assert outcomes(report) == {
        "orders_json": ("created", "7 columns (json); partitioned by year, month; +2 partitions"),
        "returns_csv": ("created", "4 columns (csv); partitioned by country; +2 partitions"),
        "events_parquet": ("created", "5 columns (parquet); partitioned by day; +2 partitions"),
        "avro_orders": ("created", "4 columns (avro)"),
    }
    orders = glue.get_table(DatabaseName=database, Name="orders_json")["Table"]
    assert columns_of(orders) == [
        ("order_id", "string"),
        ("qty", "int"),
        ("amount", "int"),
        ("paid", "boolean"),
        ("items", "array<struct<sku:string,qty:int>>"),
        ("created_at", "string"),
        ("note", "string"),
    ]
    assert orders["PartitionKeys"] == [
        {"Name": "year", "Type": "string"},
        {"Name": "month", "Type": "string"},
    ]
    assert orders["TableType"] == "EXTERNAL_TABLE"
    assert orders["Parameters"] == {
        "classification": "json",
        "typeOfData": "file",
        "EXTERNAL": "TRUE",
        "UPDATED_BY_CRAWLER": "orders_json",
    }
    storage = orders["StorageDescriptor"]
    assert storage["Location"] == f"{folders['json'].resolve()}/"
    assert (storage["InputFormat"], storage["OutputFormat"]) == (TEXT_INPUT, TEXT_OUTPUT)
    assert storage["SerdeInfo"] == {
        "SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe",
        "Parameters": {"paths": "order_id,qty,amount,paid,items,created_at,note"},
    }
    partitions = partitions_of(glue, database, "orders_json")
    assert sorted(partitions) == [("2024", "05"), ("2024", "06")]
    may = partitions[("2024", "05")]["StorageDescriptor"]
    assert may["Location"] == f"{folders['json'].resolve()}/year=2024/month=05/"
    assert may["Columns"] == storage["Columns"] and may["SerdeInfo"] == storage["SerdeInfo"]

    returns = glue.get_table(DatabaseName=database, Name="returns_csv")["Table"]
    assert columns_of(returns) == [
        ("order_id", "string"),
        ("qty", "int"),
        ("refund", "double"),
        ("returned_at", "string"),
    ]
    assert returns["Parameters"]["skip.header.line.count"] == "1"
    assert returns["Parameters"]["delimiter"] == ";"
    assert returns["StorageDescriptor"]["SerdeInfo"] == {
        "SerializationLibrary": "org.apache.hadoop.hive.serde2.OpenCSVSerde",
        "Parameters": {"separatorChar": ";", "quoteChar": '"', "escapeChar": "\\"},
    }
    assert sorted(partitions_of(glue, database, "returns_csv")) == [("DE",), ("SE",)]

    events = glue.get_table(DatabaseName=database, Name="events_parquet")["Table"]
    assert columns_of(events) == [
        ("id", "bigint"),
        ("amount", "decimal(12,2)"),
        ("at", "timestamp"),
        ("tags", "array<string>"),
        ("ship_to", "struct<city:string>"),
    ]
    assert events["Parameters"]["classification"] == "parquet"
    events_storage = events["StorageDescriptor"]
    assert events_storage["InputFormat"] == (
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    )
    assert events_storage["OutputFormat"] == (
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    )
    assert events_storage["SerdeInfo"]["SerializationLibrary"] == (
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    )
    assert sorted(partitions_of(glue, database, "events_parquet")) == [
        ("2024-05-01",),
        ("2024-05-02",),
    ]

    avro = glue.get_table(DatabaseName=database, Name="avro_orders")["Table"]
    assert columns_of(avro) == [
        ("orderid", "string"),
        ("amount", "bigint"),
        ("status", "string"),
        ("at", "timestamp"),
    ]
    assert avro["PartitionKeys"] == []
    avro_storage = avro["StorageDescriptor"]
    assert avro_storage["InputFormat"] == (
        "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat"
    )
    assert avro_storage["OutputFormat"] == (
        "org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat"
    )
    serde = avro_storage["SerdeInfo"]
    assert serde["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.avro.AvroSerDe"
    literal = json.loads(serde["Parameters"]["avro.schema.literal"])
    assert avro["Parameters"]["avro.schema.literal"] == serde["Parameters"]["avro.schema.literal"]
    assert [f["name"] for f in literal["fields"]] == ["orderId", "amount", "status", "at"]
    with (folders["avro"] / "orders.avro").open("rb") as stream:  # the file reads with it
        rows = list(fastavro.reader(stream, reader_schema=fastavro.parse_schema(literal)))
    assert rows[0]["status"] == "NEW"

    counting = CountingGlue(glue)
    again = crawl_all(crawl_run(pipeline, settings), counting)
    assert counting.writes == [], (counting.writes, outcomes(again))
    assert {action for action, _ in outcomes(again).values()} == {"unchanged"}
    unchanged = glue.get_table(DatabaseName=database, Name="orders_json")["Table"]
    assert unchanged["VersionId"] == orders["VersionId"]

    only = crawl_all(crawl_run(pipeline, settings, only="returns_csv"), glue)
    assert list(outcomes(only)) == ["returns_csv"]


def test_parquet_on_s3(loaded: Any, settings: Settings, glue: Any) -> None:
    s3 = aws_endpoint(settings).client("s3")
    bucket = f"crawl-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    table = pa.table({"id": pa.array([1, 2], pa.int32()), "name": ["a", "b"]})
    for day in ("2024-05-01", "2024-05-02", "2024-05-03"):
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        s3.put_object(
            Bucket=bucket,
            Key=f"exports/day={day}/part-0.parquet",
            Body=sink.getvalue().to_pybytes(),
        )
    s3.put_object(Bucket=bucket, Key="exports/_SUCCESS", Body=b"")
    s3.put_object(Bucket=bucket, Key="exports/_temporary/0/part-9.parquet", Body=b"partial")
    s3.put_object(Bucket=bucket, Key="exports/day=2024-05-01/", Body=b"")  # a folder marker
    pipeline = crawl_pipeline(
        loaded,
        exports={"path": f"s3a://{bucket}/exports"},
        nothing_yet={"path": f"s3://{bucket}/imports/"},
        no_bucket={"path": f"s3://{bucket}-gone/exports/"},
    )
    database = f"{pipeline.name}_landing"

    report = crawl_all(crawl_run(pipeline, settings), glue)

    assert outcomes(report) == {
        "exports": ("created", "2 columns (parquet); partitioned by day; +3 partitions"),
        "nothing_yet": ("skipped", f"no data files under s3://{bucket}/imports/"),
        "no_bucket": (
            "skipped",
            f"s3://{bucket}-gone/exports/: bucket {bucket}-gone does not exist",
        ),
    }
    assert report.failed is None
    found = glue.get_table(DatabaseName=database, Name="exports")["Table"]
    assert columns_of(found) == [("id", "int"), ("name", "string")]
    assert found["StorageDescriptor"]["Location"] == f"s3://{bucket}/exports/"
    partitions = partitions_of(glue, database, "exports")
    assert sorted(partitions) == [("2024-05-01",), ("2024-05-02",), ("2024-05-03",)]
    location = partitions[("2024-05-02",)]["StorageDescriptor"]["Location"]
    assert location == f"s3://{bucket}/exports/day=2024-05-02/"

    s3.delete_object(Bucket=bucket, Key="exports/day=2024-05-03/part-0.parquet")
    counting = CountingGlue(glue)
    again = crawl_all(crawl_run(pipeline, settings, only="exports"), counting)
    assert outcomes(again) == {"exports": ("updated", "-1 partition")}
    assert counting.writes == ["batch_delete_partition"]


def test_schema_changes_between_runs(
    loaded: Any, settings: Settings, glue: Any, tmp_path: Path
) -> None:
    root = tmp_path / "orders"
    old = {"id": 1, "amount": 10, "qty": 2, "legacy": "x"}
    write_json(root / "day=1/a.json", old)
    write_json(root / "day=2/a.json", old)
    pipeline = crawl_pipeline(loaded, orders={"path": str(root)})
    database = f"{pipeline.name}_landing"
    run = crawl_run(pipeline, settings)
    assert outcomes(crawl_all(run, glue))["orders"][0] == "created"

    # A later file: two new columns, a widened type and an incompatible one.
    write_json(root / "day=3/b.json", {"id": 2, "amount": 2.5, "qty": "many", "discount": 0.1,
                                       "coupon": "SPRING"})  # fmt: skip
    report = crawl_all(run, glue)
    assert outcomes(report)["orders"] == (
        "updated",
        "+2 columns (discount, coupon); amount int->double; qty int->string (incompatible); "
        "+1 partition, 2 partitions updated",
    )
    table = glue.get_table(DatabaseName=database, Name="orders")["Table"]
    assert columns_of(table) == [
        ("id", "int"),
        ("amount", "double"),
        ("qty", "string"),
        ("legacy", "string"),
        ("discount", "double"),
        ("coupon", "string"),
    ]
    # Every partition carries the table's columns (Athena refuses one that differs).
    for partition in partitions_of(glue, database, "orders").values():
        assert partition["StorageDescriptor"]["Columns"] == table["StorageDescriptor"]["Columns"]

    # The files with `legacy` are gone: the column stays, reported as missing.
    for day in ("1", "2"):
        (root / f"day={day}" / "a.json").unlink()
    report = crawl_all(run, glue)
    assert outcomes(report)["orders"] == (
        "updated",
        "1 missing from the files (legacy); -2 partitions",
    )
    kept = glue.get_table(DatabaseName=database, Name="orders")["Table"]
    assert columns_of(kept) == columns_of(table)
    counting = CountingGlue(glue)
    assert outcomes(crawl_all(run, counting))["orders"] == (
        "unchanged",
        "1 missing from the files (legacy)",
    )
    assert counting.writes == []


def test_failures_stop_their_crawler_only(
    loaded: Any,
    settings: Settings,
    glue: Any,
    stack_env: dict[str, str],
    tmp_path: Path,
) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "part-0.parquet").write_bytes(b"PAR1 cut short by a failed upload")
    bad_json = tmp_path / "bad_json"
    write_json(bad_json / "a.json", {"id": 1})
    (bad_json / "b.json").write_text('{"id": 2}\n{"id": 3,\n')
    mixed = tmp_path / "mixed"
    write_json(mixed / "year=2024/month=05/a.json", {"id": 1})
    write_json(mixed / "year=2024/b.json", {"id": 2})
    good = tmp_path / "good"
    write_json(good / "a.json", {"id": 1})
    empty = tmp_path / "empty"
    (empty / "_temporary").mkdir(parents=True)
    (empty / "_SUCCESS").write_text("")
    pipeline = crawl_pipeline(
        loaded,
        corrupt={"path": str(corrupt)},
        bad_json={"path": str(bad_json)},
        mixed={"path": str(mixed)},
        good={"path": str(good)},
        missing={"path": str(tmp_path / "nowhere")},
        empty={"path": str(empty)},
    )

    report = crawl_all(crawl_run(pipeline, settings), glue)

    found = outcomes(report)
    assert {name: action for name, (action, _) in found.items()} == {
        "corrupt": "failed",
        "bad_json": "failed",
        "mixed": "failed",
        "good": "created",
        "missing": "skipped",
        "empty": "skipped",
    }
    assert found["corrupt"][1].startswith(
        f"crawler corrupt: {corrupt}/part-0.parquet: not a readable Parquet file: "
    )
    assert found["bad_json"][1].startswith(
        f"crawler bad_json: {bad_json}/b.json: line 2 is not JSON ("
    )
    assert "year=2024/b.json has keys (year)" in found["mixed"][1]
    assert "year=2024/month=05/a.json has keys (year, month)" in found["mixed"][1]
    assert found["missing"][1].startswith(f"{tmp_path / 'nowhere'} does not exist")
    assert found["empty"][1] == f"no data files under {empty}"
    assert report.failed is not None
    assert all(name in report.failed for name in ("corrupt", "bad_json", "mixed"))
    assert all("\n" not in detail for _, detail in found.values())

    # Through the command line: the report, and exit 1.
    configs = write_config_dir(
        tmp_path / "configs", pipeline, checkout_root() / "configs" / "local.yaml"
    )
    env = cli_env(stack_env, tmp_path) | {"PYTHONPATH": str(checkout_root())}
    result = subprocess.run(
        [sys.executable, "-m", "streamlake", "--config", str(configs), "batch", "run", "crawl",
         "--json"],
        capture_output=True, text=True, env=env, timeout=120, cwd=os.fspath(tmp_path),
    )  # fmt: skip
    assert result.returncode == EXIT_JOB_FAILED, result.stderr
    printed = json.loads(result.stdout)
    assert printed["kind"] == "crawl"
    assert {t["table"].split(".")[1]: t["action"] for t in printed["tables"]}["good"] == "unchanged"
    assert f"{corrupt}/part-0.parquet" in printed["failed"]


def test_local_up_creates_the_crawler_databases(loaded: Any, glue: Any) -> None:
    pipeline: Pipeline = loaded.pipeline
    for name in pipeline.crawlers:
        database = pipeline.crawler_database(name)
        assert glue.get_database(Name=database)["Database"]["Name"] == database
